"""The ``tracks.json`` document at the edge: read defensively and validated, field by field.

The one reader, :func:`jobs.tracks.read_tracks` (``streamseg eval``, the annotation exports,
the batch runner, the demo), checks the file with :func:`load_tracks_document`, so a damaged or
hostile file gets one clear line (:class:`InputError`) and never a traceback, a hang or a
silently wrong score. The ``"video"`` block is written and read here too (:func:`video_block`,
:func:`video_from_block`: :class:`jobs.media.VideoInfo` both ways). The checks:

* only a regular file is read (``jobs.bounded_read``: not a folder, a FIFO or ``/dev/zero``),
  as UTF-8 JSON without ``NaN``/``Infinity``; nesting deeper than Python's parser allows is refused;
* JSON types exactly: ``"id": true`` is not object 1, ``"frame": "3"`` is not frame 3;
* every RLE is the video's size (``[height, width]``), frames lie inside the video and come in
  increasing order per object, object ids are unique, scores are finite, and a frame is at
  most :data:`MAX_FRAME_PIXELS` pixels (a mask is decoded whole).

Entries marked not visible may have ``null`` for ``rle`` and ``bbox`` (other tools write that).
"""

from __future__ import annotations

import json
import os
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from configs.errors import InputError
from jobs.bounded_read import one_line, read_bytes
from jobs.media import VideoInfo

MAX_FRAME_PIXELS = 1 << 28  # 16384 x 16384: one decoded mask is this many bytes

_Int = Annotated[int, Strict(), Field(ge=0)]
_Size = Annotated[int, Strict(), Field(gt=0)]
_Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]  # an int is a number too


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)


class RleJson(_Model):
    """COCO RLE: ``size`` [H, W]; ``counts`` compressed (str) or uncompressed (run lengths)."""

    size: tuple[_Int, _Int]
    counts: Annotated[str, Strict()] | list[_Int]

    @model_validator(mode="after")
    def _runs_cover_the_mask(self) -> RleJson:
        if isinstance(self.counts, list) and sum(self.counts) != self.size[0] * self.size[1]:
            height, width = self.size
            raise ValueError(f"run lengths add up to {sum(self.counts)}, not {height}x{width}")
        return self


class FrameJson(_Model):
    frame: _Int
    rle: RleJson | None = None
    bbox: tuple[_Int, _Int, _Int, _Int] | None = None
    score: _Number
    visible: Annotated[bool, Strict()]

    @model_validator(mode="after")
    def _visible_needs_a_mask(self) -> FrameJson:
        if self.visible and (self.rle is None or self.bbox is None):
            raise ValueError(f"frame {self.frame} is visible but has no rle or bbox")
        return self


class ObjectJson(_Model):
    id: _Int
    frames: list[FrameJson]

    @model_validator(mode="after")
    def _frames_increase(self) -> ObjectJson:
        frames = [entry.frame for entry in self.frames]
        if any(later <= earlier for earlier, later in pairwise(frames)):
            raise ValueError(f"the frames of object {self.id} do not increase")
        return self


class VideoJson(_Model):
    width: _Size
    height: _Size
    fps: Annotated[_Number, Field(ge=0)]
    num_frames: _Int | None = None

    @model_validator(mode="after")
    def _not_huge(self) -> VideoJson:
        if self.width * self.height > MAX_FRAME_PIXELS:
            raise ValueError(f"a {self.width}x{self.height} frame is over {MAX_FRAME_PIXELS} px")
        return self


class TracksDocument(_Model):
    """A whole ``tracks.json``, checked (see the module docstring)."""

    video: VideoJson
    model: dict[str, Any] = Field(default_factory=dict)
    objects: list[ObjectJson]

    @model_validator(mode="after")
    def _consistent(self) -> TracksDocument:
        ids = [obj.id for obj in self.objects]
        if len(set(ids)) != len(ids):
            raise ValueError("an object id appears twice")
        size = (self.video.height, self.video.width)  # RLE sizes are [H, W]
        for obj in self.objects:
            for entry in obj.frames:
                where = f"object {obj.id} frame {entry.frame}"
                if self.video.num_frames is not None and entry.frame >= self.video.num_frames:
                    raise ValueError(f"{where} is past the video's {self.video.num_frames} frames")
                if entry.rle is not None and entry.rle.size != size:
                    raise ValueError(
                        f"{where}: mask size {list(entry.rle.size)} is not the video's {list(size)}"
                    )
        return self


def video_block(video: VideoInfo) -> dict[str, Any]:
    """The ``"video"`` block of ``tracks.json`` for ``video``: width, height, fps, num_frames."""
    frames = None if video.num_frames is None else int(video.num_frames)
    return {
        "width": int(video.width),
        "height": int(video.height),
        "fps": float(video.fps),
        "num_frames": frames,
    }


def video_from_block(block: VideoJson, source: str) -> VideoInfo:
    """The :class:`VideoInfo` of a checked ``"video"`` block; ``source``: where the file is."""
    return VideoInfo(block.width, block.height, float(block.fps), block.num_frames, source=source)


def check_video_meta(video: VideoInfo) -> None:
    """Raise ValueError (one line) unless ``video`` makes a valid ``"video"`` block."""
    try:
        VideoJson.model_validate(video_block(video))
    except ValidationError as error:
        raise ValueError(f"invalid video block for tracks.json: {_first_problem(error)}") from None


def load_tracks_document(path: str | os.PathLike[str]) -> TracksDocument:
    """Read and check a ``tracks.json``; anything wrong raises a one-line :class:`InputError`."""
    text = _read_regular_file(Path(path))
    try:
        raw = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise InputError(f"not a valid tracks.json: {path} (nested too deeply)") from None
    except ValueError as error:
        raise InputError(f"not a valid tracks.json: {path} ({one_line(error)})") from None
    try:
        return TracksDocument.model_validate(raw)
    except ValidationError as error:
        raise InputError(f"not a valid tracks.json: {path} ({_first_problem(error)})") from None


def _read_regular_file(path: Path) -> str:
    data = read_bytes(path, "tracks.json", regular_only=True)  # a tracks.json may be large
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"not a valid tracks.json: {path} is not UTF-8 ({error.reason} "
                         f"at byte {error.start})") from None  # fmt: skip


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _first_problem(error: ValidationError) -> str:
    problem = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in problem["loc"])
    message = str(problem["msg"]).removeprefix("Value error, ")
    return one_line(f"{where}: {message}" if where else message)
