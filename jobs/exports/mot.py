"""MOTChallenge export: one text line per visible object per frame.

Line format: ``frame,id,bb_left,bb_top,bb_width,bb_height,conf,-1,-1,-1``. Frame numbers and
pixel coordinates are 1-based, as in MOTChallenge's ground truth (a Matlab convention:
py-motmetrics subtracts 1 from bb_left and bb_top when it reads; TrackEval compares the numbers
as they are, against ground truth in that convention): a box whose COCO
``[x, y, w, h]`` is ``[0, 0, 4, 3]`` is written ``1,1,4,3``. ``conf`` is the tracker's score.
Written as frames arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from jobs.exports import FrameMasks, check_frame, video_length
from jobs.mask_codec import mask_bbox
from jobs.media import VideoInfo

MOT_ORIGIN = 1  # MOTChallenge numbers frames and pixels from 1; streamseg from 0


def mot_lines(item: FrameMasks) -> list[str]:
    """The MOT lines of one frame, in increasing object id order.

    An object with an empty mask has no box and no line (``FrameMasks.visible`` leaves it out).
    """
    lines = []
    for obj_id, mask in item.visible().items():
        x, y, w, h = mask_bbox(mask)
        left, top = x + MOT_ORIGIN, y + MOT_ORIGIN
        frame = item.frame + MOT_ORIGIN
        lines.append(f"{frame},{obj_id},{left},{top},{w},{h},{item.score(obj_id):.6g},-1,-1,-1")
    return lines


def write_mot(path: Path, video: VideoInfo, frames: Iterable[FrameMasks]) -> int:
    """Write a MOTChallenge ``.txt`` file; returns the number of lines written."""
    video_length(video)  # a video of unknown length is refused before the file is opened
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
