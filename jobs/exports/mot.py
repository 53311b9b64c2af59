"""MOTChallenge export: one text line per visible object per frame.

Line format: ``frame,id,x,y,w,h,conf,-1,-1,-1`` with 1-based frame numbers, the tight box of
the mask in pixels (x, y: left and top, 0-based like COCO) and the tracker's score as ``conf``.
Written as frames arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from jobs.exports import FrameMasks, VideoLike, check_frame, mask_bbox


def mot_lines(item: FrameMasks) -> list[str]:
    """The MOT lines of one frame, in increasing object id order."""
    lines = []
    for obj_id, mask in item.visible().items():
        box = mask_bbox(mask)
        if box is None:
            continue
        x, y, w, h = box
        lines.append(f"{item.frame + 1},{obj_id},{x},{y},{w},{h},{item.score(obj_id):.6g},-1,-1,-1")
    return lines


def write_mot(path: Path, video: VideoLike, frames: Iterable[FrameMasks]) -> int:
    """Write a MOTChallenge ``.txt`` file; returns the number of lines written."""
    count = 0
    previous = -1
    with Path(path).open("w", encoding="ascii") as out:
        for item in frames:
            check_frame(item, video, previous)
            previous = item.frame
            for line in mot_lines(item):
                out.write(line + "\n")
                count += 1
    return count
