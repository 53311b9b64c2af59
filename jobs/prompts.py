"""Prompts: where the user says what to track.

Two forms: ``PromptSpec`` (pydantic, the JSON edge: prompt files and job specs) and
``Prompt`` (the typed value the tracker consumes). Coordinates are pixels of the source frame.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from configs.errors import InputError
from jobs.bounded_read import read_text

if TYPE_CHECKING:  # numpy and PIL load only where a mask is read (not on ``streamseg submit``)
    import numpy as np

Point = tuple[float, float]
Box = tuple[float, float, float, float]

MAX_OBJECT_ID = 2**31 - 1  # ids travel as int32 in exports and masks
MAX_PROMPT_FILE_BYTES = 16 << 20  # a prompts file is read whole: /dev/zero must not be
MAX_DOCUMENT_DEPTH = 32  # a prompts document is 5 levels deep; 32 leaves room, not a stack
MAX_DOCUMENT_NODES = 1_000_000  # values counted as expanded: a YAML alias bomb stops here
YAML_SUFFIXES = (".yaml", ".yml")


def _whole_number(value: object) -> int:
    """Exactly an integer: ``true`` is not object 1, ``"3"`` or ``3.0`` is not frame 3."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise PydanticCustomError(
            "whole_number", "Input should be a whole number, not {kind}", _kind(value)
        )
    return int(value)


def _number(value: object) -> float:
    """A real number (an integer too); not a bool or a string. Finite: checked after."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PydanticCustomError("number", "Input should be a number, not {kind}", _kind(value))
    return float(value)


def _kind(value: object) -> dict[str, str]:
    return {"kind": "true/false" if isinstance(value, bool) else type(value).__name__}


_Int = Annotated[int, BeforeValidator(_whole_number)]
_Coordinate = Annotated[float, BeforeValidator(_number)]


@dataclass(frozen=True, eq=False)
class Prompt:
    """Everything given for one object on one frame.

    ``points``: clicks (x, y) with ``labels`` 1 = positive, 0 = negative; ``box``: (x0, y0,
    x1, y1); ``mask``: (H, W) bool at source resolution. A mask excludes points and box.
    """

    obj_id: int
    frame: int = 0
    points: tuple[Point, ...] = ()
    labels: tuple[int, ...] = ()
    box: Box | None = None
    mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return "mask" if self.mask is not None else ("box" if self.box else "points")


class PromptSpec(BaseModel):
    """One entry of a prompts file: ``{"frame", "object", "points"+"labels" | "box" | "mask"}``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    frame: _Int = Field(default=0, ge=0)
    object: _Int = Field(ge=0, le=MAX_OBJECT_ID)
    points: list[tuple[_Coordinate, _Coordinate]] | None = None
    labels: list[_Int] | None = None
    box: tuple[_Coordinate, _Coordinate, _Coordinate, _Coordinate] | None = None
    mask: Annotated[str, Strict()] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _check(self) -> PromptSpec:
        if not self.points and self.box is None and self.mask is None:  # [] is none too
            raise ValueError("a prompt needs points, a box or a mask")
        if self.mask is not None and (self.points or self.box):
            raise ValueError("a mask prompt cannot be combined with points or a box")
        if self.points is not None:
            labels = self.labels if self.labels is not None else [1] * len(self.points)
            if len(labels) != len(self.points):
                raise ValueError("points and labels must have the same length")
            if any(label not in (0, 1) for label in labels):
                raise ValueError("labels must be 1 (positive) or 0 (negative)")
            self.labels = labels
        elif self.labels:
            raise ValueError("labels given without points")
        return self

    def to_prompt(self, base_dir: Path) -> Prompt:
        mask = load_mask(base_dir / self.mask) if self.mask is not None else None
        return Prompt(
            obj_id=self.object,
            frame=self.frame,
            points=tuple(tuple(p) for p in self.points or ()),
            labels=tuple(self.labels or ()),
            box=self.box,
            mask=mask,
        )


class PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompts: list[PromptSpec] = Field(min_length=1)


def load_mask(path: Path) -> np.ndarray:
    """A mask PNG as (H, W) bool: any non-zero pixel is the object (alpha is ignored)."""
    import numpy as np
    from PIL import Image

    from jobs.image_files import open_image

    try:
        with open_image(path) as image:
            image.load()
    except FileNotFoundError:
        raise InputError(f"no such mask file: {path}") from None
    except (OSError, Image.DecompressionBombError, ValueError) as error:
        raise InputError(f"cannot read mask {path}: {_first_line(error)}") from None
    if image.mode in ("LA", "RGBA", "PA"):
        image = image.convert(image.mode[:-1] if image.mode != "RGBA" else "RGB")
    array = np.asarray(image)
    return array.reshape(array.shape[0], array.shape[1], -1).any(axis=-1)


def load_prompt_file(path: Path) -> list[Prompt]:
    """Prompts from a JSON (or YAML) prompts file; mask paths are relative to the file."""
    raw = read_prompt_document(path)
    return prompts_from_json(raw, Path(path).parent, source=str(path))


def read_prompt_document(path: Path) -> object:
    """A prompts file's document, parsed defensively; ``InputError`` names what is wrong.

    At most ``MAX_PROMPT_FILE_BYTES`` are read (an endless file is refused, not swallowed);
    the text must be UTF-8 (a BOM is allowed); ``.yaml``/``.yml`` files are YAML (safe
    loader), others JSON without ``NaN``/``Infinity``; the document may be at most
    ``MAX_DOCUMENT_DEPTH`` levels deep and hold at most ``MAX_DOCUMENT_NODES`` values, with
    YAML aliases counted each time they are used.
    """
    text = read_text(
        Path(path), "prompts file", max_bytes=MAX_PROMPT_FILE_BYTES, encoding="utf-8-sig"
    )
    is_yaml = Path(path).suffix.lower() in YAML_SUFFIXES
    try:
        raw = _parse_yaml(text) if is_yaml else json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise InputError(f"prompts file {path} is nested too deeply") from None
    except ValueError as error:  # json.JSONDecodeError, and the constants refused
        raise InputError(f"cannot parse prompts file {path}: {_first_line(error)}") from None
    _check_document_shape(raw, path)
    return raw


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number a prompt can use")


def _parse_yaml(text: str) -> object:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(_first_line(error)) from None


def _check_document_shape(raw: object, path: Path) -> None:
    """Depth and size of a parsed document, walked without recursion."""
    stack, nodes = [(raw, 1)], 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_DOCUMENT_NODES:
            raise InputError(f"prompts file {path} holds more than {MAX_DOCUMENT_NODES} values")
        if depth > MAX_DOCUMENT_DEPTH:
            raise InputError(
                f"prompts file {path} is nested more than {MAX_DOCUMENT_DEPTH} levels deep"
            )
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def prompts_from_json(raw: object, base_dir: Path, source: str = "prompts") -> list[Prompt]:
    """Validate ``{"prompts": [...]}`` (or a bare list) and turn it into ``Prompt`` values."""
    if isinstance(raw, list):
        raw = {"prompts": raw}
    try:
        parsed = PromptFile.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InputError(f"invalid {source}: {where}: {first['msg']}") from None
    return [spec.to_prompt(base_dir) for spec in parsed.prompts]


# OBJ:VALUE[@FRAME]: only a trailing @digits is a frame, so a mask path may hold "@"
# (a path that itself ends in @digits takes an explicit frame: m@5@0)
_FLAG = re.compile(r"\s*(\d+)\s*:\s*(.+?)(?:\s*@\s*(\d+))?\s*", re.DOTALL)


def parse_flag(kind: str, text: str) -> Prompt:
    """One ``--point/--neg-point/--box/--mask`` value: ``OBJ:VALUE[@FRAME]``."""
    match = _FLAG.fullmatch(text)
    if not match:
        raise InputError(f"invalid --{kind} {text!r}: expected OBJ:VALUE[@FRAME]")
    obj_id, value, frame = int(match[1]), match[2], int(match[3] or 0)
    if obj_id > MAX_OBJECT_ID:
        raise InputError(f"invalid --{kind} {text!r}: object ids go up to {MAX_OBJECT_ID}")
    if kind == "mask":
        return Prompt(obj_id, frame, mask=load_mask(Path(value)))
    numbers = _numbers(kind, text, value, 4 if kind == "box" else 2)
    if kind == "box":
        return Prompt(obj_id, frame, box=tuple(numbers))
    label = 0 if kind == "neg-point" else 1
    return Prompt(obj_id, frame, points=(tuple(numbers),), labels=(label,))


def _numbers(kind: str, text: str, value: str, count: int) -> list[float]:
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) != count:
        raise InputError(f"invalid --{kind} {text!r}: expected {count} comma-separated numbers")
    if not all(math.isfinite(number) for number in numbers):
        raise InputError(f"invalid --{kind} {text!r}: coordinates must be finite numbers")
    return numbers


def merge_prompts(prompts: Iterable[Prompt]) -> list[Prompt]:
    """One prompt per (object, frame): clicks accumulate, a box goes with them, masks alone."""
    merged: dict[tuple[int, int], Prompt] = {}
    for prompt in prompts:
        key = (prompt.obj_id, prompt.frame)
        if key not in merged:
            merged[key] = prompt
            continue
        old = merged[key]
        if old.mask is not None or prompt.mask is not None:
            raise InputError(
                f"object {prompt.obj_id} on frame {prompt.frame}: a mask prompt cannot be "
                "combined with other prompts on the same frame"
            )
        if old.box is not None and prompt.box is not None:
            raise InputError(f"object {prompt.obj_id} on frame {prompt.frame}: two boxes given")
        merged[key] = Prompt(
            prompt.obj_id,
            prompt.frame,
            points=old.points + prompt.points,
            labels=old.labels + prompt.labels,
            box=old.box or prompt.box,
        )
    return sorted(merged.values(), key=lambda p: (p.frame, p.obj_id))


def validate_prompts(prompts: Sequence[Prompt], width: int, height: int) -> None:
    """Check every prompt against the frame size; an ``InputError`` naming the first bad one."""
    for prompt in prompts:
        where = f"object {prompt.obj_id} on frame {prompt.frame}"
        for x, y in prompt.points:
            if not (0 <= x < width and 0 <= y < height):
                raise InputError(
                    f"{where}: point ({x:g}, {y:g}) is outside the {width}x{height} frame"
                )
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise InputError(
                    f"{where}: box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is empty or outside "
                    f"the {width}x{height} frame"
                )
        if prompt.mask is not None:
            if prompt.mask.shape != (height, width):
                h, w = prompt.mask.shape
                raise InputError(f"{where}: mask is {w}x{h}, the video is {width}x{height}")
            if not prompt.mask.any():
                raise InputError(f"{where}: mask prompt is empty (no non-zero pixel)")


def check_prompt_frames(
    prompts: Sequence[Prompt], num_frames: int | None, max_frames: int | None = None
) -> None:
    """Every prompt is on a frame that will be tracked: ``num_frames`` is the video's length
    (None: not known), ``max_frames`` the run's limit (None: the whole video). Run it before
    the first frame, so that a prompt past the end is found before any tracking."""
    if not prompts:
        return
    last = max(prompts, key=lambda prompt: (prompt.frame, prompt.obj_id))
    where = f"object {last.obj_id} is prompted on frame {last.frame}"
    if num_frames is not None and last.frame >= num_frames:
        if max_frames is None or num_frames <= max_frames:
            span = f" (0 to {num_frames - 1})" if num_frames else ""
            raise InputError(f"{where}, but the video has only {num_frames} frames{span}")
    if max_frames is not None and last.frame >= max_frames:
        raise InputError(
            f"{where}, beyond --max-frames {max_frames} (frames 0 to {max_frames - 1} are tracked)"
        )


def check_prompt_timing(prompt: Prompt, next_frame: int) -> None:
    """A tracker's check on a prompt it is handed: well-formed and not for a past frame."""
    if prompt.frame < next_frame:
        raise InputError(
            f"prompt for object {prompt.obj_id} on frame {prompt.frame} arrived after that "
            f"frame was processed (next frame is {next_frame})"
        )
    if prompt.mask is not None and (prompt.points or prompt.box):
        raise InputError("a mask prompt cannot be combined with points or a box")
    if prompt.mask is None and not prompt.points and prompt.box is None:
        raise InputError(f"prompt for object {prompt.obj_id} has no points, box or mask")


class PendingPrompts:
    """Prompts a tracker has been handed for frames it has not processed yet."""

    def __init__(self) -> None:
        self._by_frame: dict[int, dict[int, Prompt]] = {}

    def add(self, prompt: Prompt, next_frame: int) -> None:
        check_prompt_timing(prompt, next_frame)
        self._by_frame.setdefault(prompt.frame, {})[prompt.obj_id] = prompt

    def drop_object(self, obj_id: int) -> None:
        for prompts in self._by_frame.values():
            prompts.pop(obj_id, None)

    def take(self, frame: int) -> dict[int, Prompt]:
        """The prompts for ``frame`` by object id, removed from the queue."""
        return self._by_frame.pop(frame, {})

    def clear(self) -> None:
        self._by_frame.clear()
