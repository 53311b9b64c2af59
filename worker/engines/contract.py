"""The contract between an engine and whatever drives it (pipeline, live mode, queue jobs).

Both engines (``sam2video``, ``lite``) return :class:`FrameResult`; :class:`Tracker` is what
the pipeline needs, :class:`EditableTracker` adds what live mode needs (removing an object),
and :class:`Snapshotting` is the optional protocol for crash-resume and live rewinds: a
tracker either has both ``snapshot`` and ``restore`` or neither. An :class:`Engine` is a
loaded model that starts one tracker per video.

Importing this module loads no torch: tensor types are named for type checkers only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch

    from jobs.media import ModelInfo, VideoInfo
    from jobs.prompts import Prompt


@dataclass(frozen=True, eq=False)
class ObjectResult:
    """One object on one frame.

    ``low_res_logits``: (1, 1, h, w) float32 mask logits at the engine's resolution (SAM 2:
    S/4 x S/4 after its hole filling, as the official predictor stores them), None where only
    the mask travels (live results read back from a remote tracker); ``mask``: (H, W) bool at
    source resolution; ``score``: the object-score logit (> 0 = present).
    """

    obj_id: int
    low_res_logits: torch.Tensor | None
    mask: np.ndarray
    score: float

    @property
    def visible(self) -> bool:
        return self.score > 0

    @property
    def box(self) -> tuple[int, int, int, int] | None:
        """``(x, y, w, h)`` of the mask in pixels (``jobs.mask_codec``'s rule); None if empty."""
        from jobs.mask_codec import mask_bbox

        x, y, w, h = mask_bbox(self.mask)
        return (x, y, w, h) if w else None


@dataclass(frozen=True)
class FrameResult:
    """Every tracked object on frame ``frame_idx`` (0-based), by object id."""

    frame_idx: int
    objects: dict[int, ObjectResult]

    def masks(self) -> dict[int, np.ndarray]:
        """``{object id: (H, W) bool mask}``."""
        return {obj_id: obj.mask for obj_id, obj in self.objects.items()}


class Tracker(Protocol):
    """What the pipeline needs of a tracker: prompts, then one ``step`` per frame in order.

    ``step(rgb)``: ``rgb`` is (H, W, 3) uint8; returns the frame's results and advances
    ``frame_idx`` (the index of the next frame).
    """

    frame_idx: int

    def add_prompt(self, prompt: Prompt) -> None: ...

    def step(self, rgb: np.ndarray) -> FrameResult: ...


class EditableTracker(Tracker, Protocol):
    """A tracker whose objects can also be removed while it runs (live mode)."""

    def remove_object(self, obj_id: int) -> None: ...


@runtime_checkable
class Snapshotting(Protocol):
    """A tracker whose whole state round-trips through bytes (``memory.snapshot``'s format)."""

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...


class RewindableTracker(EditableTracker, Snapshotting, Protocol):
    """What live mode needs: objects removed, and the state saved and restored to rewind."""


@dataclass(frozen=True)
class Engine:
    """A loaded engine: ``make_tracker(info)`` starts tracking one video; ``model`` describes
    it in ``tracks.json``."""

    name: str
    make_tracker: Callable[[VideoInfo], Tracker]
    model: ModelInfo
