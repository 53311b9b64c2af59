"""YouTube-VIS export: one JSON document with the video, one annotation per object, categories.

Layout (as the official YouTube-VIS files)::

    {"videos": [{"id", "width", "height", "length", "file_names"}],
     "annotations": [{"id", "video_id", "category_id", "iscrowd", "height", "width", "length",
                      "segmentations": [RLE | null], "areas": [float | null],
                      "bboxes": [[x, y, w, h] | null]}],
     "categories": [{"id", "name", "supercategory"}]}

Per-frame lists have one entry per video frame, ``null`` where the object is not visible.
Segmentations are COCO compressed RLE (``counts`` as a string), boxes and the pixel counts
(areas) come from :mod:`jobs.mask_codec`, as in ``tracks.json`` (pycocotools' ``toBbox`` and
``area`` give the same). The annotation ``length`` is 1, as in the official files; the video's
``length`` is its frame count. The annotation id is the object id. Only the RLE strings are kept
in memory while the frames stream by.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jobs.exports import FrameMasks, check_frame, label_for, video_length
from jobs.mask_codec import mask_bbox, mask_to_rle
from jobs.media import VideoInfo


@dataclass
class _ObjectTrack:
    """Per-frame entries of one object (None where not visible)."""

    segmentations: list[dict[str, object] | None]
    areas: list[float | None]
    bboxes: list[list[float] | None]

    def put(self, frame: int, mask: np.ndarray) -> None:
        """Record a non-empty (H, W) bool mask (an empty one stays null: it has no box)."""
        self.segmentations[frame] = mask_to_rle(mask)
        self.areas[frame] = float(np.count_nonzero(mask))
        self.bboxes[frame] = [float(v) for v in mask_bbox(mask)]


def _collect(video: VideoInfo, frames: Iterable[FrameMasks]) -> dict[int, _ObjectTrack]:
    num_frames = video_length(video)
    tracks: dict[int, _ObjectTrack] = {}
    previous = -1
    for item in frames:
        check_frame(item, video, previous)
        previous = item.frame
        for obj_id, mask in item.visible().items():
            if obj_id not in tracks:
                empty = [None] * num_frames
                tracks[obj_id] = _ObjectTrack(list(empty), list(empty), list(empty))
            tracks[obj_id].put(item.frame, mask)
    return tracks


def ytvis_document(
    video: VideoInfo,
    frames: Iterable[FrameMasks],
    labels: Mapping[int, str] | None = None,
    video_id: int = 1,
) -> dict[str, object]:
    """The YouTube-VIS JSON document (as plain JSON values) of one video's tracks.

    Args:
        video: size, length and name (file names are ``<name>/00000.jpg``...).
        frames: per-frame masks in increasing frame order.
        labels: category name per object id; objects not listed are ``"object"``.
        video_id: the id given to the video.
    """
    tracks = _collect(video, frames)
    names = list(dict.fromkeys(label_for(labels, obj_id) for obj_id in sorted(tracks)))
    category_ids = {name: index + 1 for index, name in enumerate(names)}
    annotations = [
        {
            "id": obj_id,
            "video_id": video_id,
            "category_id": category_ids[label_for(labels, obj_id)],
            "iscrowd": 0,
            "height": video.height,
            "width": video.width,
            "length": 1,
            "segmentations": track.segmentations,
            "areas": track.areas,
            "bboxes": track.bboxes,
        }
        for obj_id, track in sorted(tracks.items())
    ]
    return {
        "videos": [_video_entry(video, video_id)],
        "annotations": annotations,
        "categories": [
            {"id": cid, "name": name, "supercategory": name} for name, cid in category_ids.items()
        ],
    }


def _video_entry(video: VideoInfo, video_id: int) -> dict[str, object]:
    return {
        "id": video_id,
        "width": video.width,
        "height": video.height,
        "length": video.num_frames,
        "file_names": [f"{video.name}/{frame:05d}.jpg" for frame in range(video.num_frames)],
    }


def write_ytvis(
    path: Path,
    video: VideoInfo,
    frames: Iterable[FrameMasks],
    labels: Mapping[int, str] | None = None,
    video_id: int = 1,
) -> int:
    """Write the YouTube-VIS JSON file; returns the number of annotations (objects)."""
    document = ytvis_document(video, frames, labels, video_id)
    Path(path).write_text(json.dumps(document))
    return len(document["annotations"])  # type: ignore[arg-type]
