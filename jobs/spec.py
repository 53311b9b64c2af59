"""A segmentation job as it travels through Redis: ``JobSpec``, plain JSON, validated.

The spec names everything a worker needs and nothing it must trust: the source (a path as the
worker sees it, an http(s) URL or an fsspec URL), prompts in the core's prompt-file format
(``jobs.prompts.PromptSpec``; a mask is a ``data:image/png;base64,...`` URL, an absolute path
or a URL, never a path relative to the client), the model, its input size, which outputs to
write and where. It is validated when submitted and again by the worker, so a spec that fails
validation is refused with a one-line reason wherever it came from.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from configs.errors import InputError
from configs.models import DEFAULT_MODEL, model_names
from jobs.prompts import Prompt, PromptSpec
from jobs.urls import is_url

if TYPE_CHECKING:  # numpy and PIL load only where a mask is encoded (not on ``streamseg submit``)
    import numpy as np

SPEC_VERSION = 1
OUTPUT_KINDS = ("tracks", "overlay")
MODEL_ALIASES = ("auto", "lite")
_DATA_URL = re.compile(r"^data:image/png;base64,([A-Za-z0-9+/=]+)$")


class JobSpec(BaseModel):
    """One video to segment: what, with which prompts and model, and where the results go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = SPEC_VERSION
    source: str = Field(min_length=1, description="video file, image folder or URL")
    output: str = Field(min_length=1, description="output folder: local path or fsspec URL")
    prompts: list[PromptSpec] = Field(min_length=1)
    model: str = DEFAULT_MODEL
    checkpoint: str | None = Field(default=None, description="checkpoint path on the worker")
    image_size: int | None = Field(default=None, ge=64, le=4096)
    outputs: tuple[Literal["tracks", "overlay"], ...] = OUTPUT_KINDS
    max_frames: int | None = Field(default=None, ge=1)
    checkpoint_every: int | None = Field(default=None, ge=1, description="frames between saves")
    offload_memory: bool = False
    timeout_s: int | None = Field(default=None, ge=1, description="default: from the length")

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        known = model_names() + list(MODEL_ALIASES)
        if name not in known:
            raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(known)}")
        return name

    @field_validator("outputs")
    @classmethod
    def _some_outputs(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        if not kinds:
            raise ValueError("at least one output (tracks, overlay) is needed")
        return tuple(dict.fromkeys(kinds))

    @field_validator("prompts")
    @classmethod
    def _portable_masks(cls, prompts: list[PromptSpec]) -> list[PromptSpec]:
        for prompt in prompts:
            mask = prompt.mask
            if mask is None or _DATA_URL.match(mask) or is_url(mask) or mask.startswith("/"):
                continue
            raise ValueError(
                f"mask of object {prompt.object} on frame {prompt.frame} must be a data: URL, "
                f"an absolute path or a URL, not {mask[:60]!r}"
            )
        return prompts

    def digest(self) -> str:
        """sha256 of the canonical JSON: a checkpoint is resumed only by the same spec."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()


def parse_spec(raw: object) -> JobSpec:
    """Validate a spec read from anywhere; an ``InputError`` naming the first problem."""
    if isinstance(raw, JobSpec):
        return raw
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "spec"
        raise InputError(f"invalid job spec: {where}: {first['msg']}") from None


# --- prompts <-> specs ---------------------------------------------------------------------


def mask_to_data_url(mask: np.ndarray) -> str:
    """(H, W) bool -> ``data:image/png;base64,...`` (a 1-bit PNG, a few KB)."""
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=bool)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def data_url_bytes(text: str) -> bytes | None:
    """The PNG bytes of a mask data URL, or None when ``text`` is not one."""
    match = _DATA_URL.match(text)
    return base64.b64decode(match[1]) if match else None


def prompt_to_spec(prompt: Prompt) -> PromptSpec:
    """A ``Prompt`` (from flags or a prompts file) as the JSON edge model, masks inlined."""
    if prompt.mask is not None:
        mask = mask_to_data_url(prompt.mask)
        return PromptSpec(frame=prompt.frame, object=prompt.obj_id, mask=mask)
    return PromptSpec(
        frame=prompt.frame,
        object=prompt.obj_id,
        points=[tuple(p) for p in prompt.points] if prompt.points else None,
        labels=list(prompt.labels) if prompt.points else None,
        box=prompt.box,
    )
