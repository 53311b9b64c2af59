"""Exporters of tracked masks to community formats, and the types they all take.

Every exporter takes a video description (:class:`VideoLike`, e.g. :class:`ExportVideo`) and an
iterable of :class:`FrameMasks`, one per frame in increasing frame order. Formats that allow it
write as frames arrive (DAVIS PNG, MOT, CVAT single-frame tracks); JSON/XML documents that must
be complete before writing keep only compressed run-length encodings in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from jobs.errors import InputError

DEFAULT_LABEL = "object"


class VideoLike(Protocol):
    """What an exporter needs to know about the video."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def fps(self) -> float: ...

    @property
    def num_frames(self) -> int: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class ExportVideo:
    """A plain :class:`VideoLike`."""

    width: int
    height: int
    fps: float
    num_frames: int
    name: str


@dataclass(frozen=True)
class FrameMasks:
    """The masks of one frame.

    Attributes:
        frame: 0-based frame index.
        masks: ``{obj_id: bool (H, W) mask}``; an object absent from the dict (or with an empty
            mask) is not visible in this frame.
        scores: ``{obj_id: confidence in [0, 1]}``; a missing score counts as 1.0.
    """

    frame: int
    masks: Mapping[int, np.ndarray]
    scores: Mapping[int, float] = field(default_factory=dict)

    def score(self, obj_id: int) -> float:
        return float(self.scores.get(obj_id, 1.0))

    def visible(self) -> dict[int, np.ndarray]:
        """The non-empty masks, as bool (H, W) arrays, in increasing object id order."""
        return {
            obj_id: np.asarray(mask, dtype=bool)
            for obj_id, mask in sorted(self.masks.items())
            if np.any(mask)
        }


def check_frame(frame: FrameMasks, video: VideoLike, previous: int) -> None:
    """Raise :class:`InputError` unless ``frame`` fits ``video`` and comes after ``previous``.

    Args:
        frame: the frame to check.
        video: the video it belongs to.
        previous: the index of the frame before it in the stream (-1 at the start).
    """
    if not 0 <= frame.frame < video.num_frames:
        raise InputError(f"frame {frame.frame} is outside the video's {video.num_frames} frames")
    if frame.frame <= previous:
        raise InputError(f"frame {frame.frame} comes after frame {previous}: frames must increase")
    for obj_id, mask in frame.masks.items():
        if np.shape(mask) != (video.height, video.width):
            raise InputError(
                f"frame {frame.frame} object {obj_id}: mask shape {np.shape(mask)} is not "
                f"the video's {(video.height, video.width)}"
            )


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box ``(x, y, w, h)`` in pixels of a bool (H, W) mask; None if it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (
        int(cols[0]),
        int(rows[0]),
        int(cols[-1] - cols[0] + 1),
        int(rows[-1] - rows[0] + 1),
    )


def label_for(labels: Mapping[int, str] | None, obj_id: int) -> str:
    """The label name of an object: ``labels[obj_id]`` or :data:`DEFAULT_LABEL`."""
    return (labels or {}).get(obj_id, DEFAULT_LABEL)
