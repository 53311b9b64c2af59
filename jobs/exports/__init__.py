"""Exporters of tracked masks to community formats, and the types they all take.

Every exporter takes the video (:class:`jobs.media.VideoInfo`: size, frame count, and the name
formats that keep one use, :attr:`~jobs.media.VideoInfo.name`) and an iterable of
:class:`FrameMasks`, one per frame in increasing frame order. Formats that allow it
write as frames arrive (DAVIS PNG, MOT, CVAT single-frame tracks); JSON/XML documents that must
be complete before writing keep only compressed run-length encodings in memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from configs.errors import InputError
from jobs.media import VideoInfo

DEFAULT_LABEL = "object"


@dataclass(frozen=True)
class FrameMasks:
    """The masks of one frame.

    Attributes:
        frame: 0-based frame index.
        masks: ``{obj_id: bool (H, W) mask}``; an object absent from the dict (or with an empty
            mask) is not visible in this frame.
        scores: ``{obj_id: confidence}``, higher is surer: a probability in [0, 1] or the
            tracker's score logit (exporters that write it say which); a missing score counts
            as 1.0. Where masks overlap it decides which object keeps a pixel
            (:func:`one_label_per_pixel`).
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

    def one_label_per_pixel(self) -> dict[int, np.ndarray]:
        """The visible masks made disjoint by :func:`one_label_per_pixel` (DAVIS, eval)."""
        return one_label_per_pixel(self.visible(), {i: self.score(i) for i in self.masks})


def one_label_per_pixel(
    masks: Mapping[int, np.ndarray], scores: Mapping[int, float] | None = None
) -> dict[int, np.ndarray]:
    """Disjoint copies of overlapping masks: each pixel goes to one object only.

    Where masks overlap, the object with the highest score keeps the pixel; on equal scores
    the lower id keeps it. This is how SAM 2's ``tools/vos_inference.py`` packs objects into
    one DAVIS label map (``non_overlap_masks``: the highest-scoring object at each location;
    ``put_per_obj_mask``: the lower id last). ``tracks.json`` keeps one score logit per object
    and frame, not per pixel, so that score decides. Used by the DAVIS PNG export and by
    ``streamseg eval``, so both see the same label map.

    Args:
        masks: ``{obj_id: bool (H, W)}``, all the same shape.
        scores: ``{obj_id: score}``; a missing score counts as 1.0.

    Returns:
        ``{obj_id: bool (H, W)}`` in increasing id order; objects left with no pixel are dropped.
    """
    scores = scores or {}

    def rank(obj_id: int) -> tuple[float, int]:
        score = float(scores.get(obj_id, 1.0))
        return (math.inf if math.isnan(score) else -score, obj_id)  # NaN loses every pixel

    winners_first = sorted(masks, key=rank)
    taken: np.ndarray | None = None
    disjoint: dict[int, np.ndarray] = {}
    for obj_id in winners_first:
        mask = np.asarray(masks[obj_id], dtype=bool)
        kept = mask if taken is None else mask & ~taken
        taken = kept.copy() if taken is None else taken | kept
        if kept.any():
            disjoint[obj_id] = kept
    return dict(sorted(disjoint.items()))


def video_length(video: VideoInfo) -> int:
    """``video.num_frames``; :class:`InputError` when it is not known (every format needs it)."""
    if video.num_frames is None:
        raise InputError(f"cannot export {video.name or 'a video'}: its frame count is not known")
    return video.num_frames


def check_frame(frame: FrameMasks, video: VideoInfo, previous: int) -> None:
    """Raise :class:`InputError` unless ``frame`` fits ``video`` and comes after ``previous``.

    Args:
        frame: the frame to check.
        video: the video it belongs to.
        previous: the index of the frame before it in the stream (-1 at the start).
    """
    if not 0 <= frame.frame < video_length(video):
        raise InputError(f"frame {frame.frame} is outside the video's {video.num_frames} frames")
    if frame.frame <= previous:
        raise InputError(f"frame {frame.frame} comes after frame {previous}: frames must increase")
    for obj_id, mask in frame.masks.items():
        if np.shape(mask) != (video.height, video.width):
            raise InputError(
                f"frame {frame.frame} object {obj_id}: mask shape {np.shape(mask)} is not "
                f"the video's {(video.height, video.width)}"
            )


def label_for(labels: Mapping[int, str] | None, obj_id: int) -> str:
    """The label name of an object: ``labels[obj_id]`` or :data:`DEFAULT_LABEL`."""
    return (labels or {}).get(obj_id, DEFAULT_LABEL)
