"""DAVIS export: one indexed PNG per frame (``00000.png``...), 0 = background, id = palette index.

One label per pixel: where masks overlap, the object with the highest score keeps the pixel
(ties: the lower id), by :func:`jobs.exports.one_label_per_pixel`, as SAM 2's
``tools/vos_inference.py`` does and as ``streamseg eval`` reads a ``tracks.json``.

Written as frames arrive; frames missing from the stream are written as all-background PNGs so
that the folder always holds ``num_frames`` files, as DAVIS evaluation expects.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from jobs.exports import FrameMasks, check_frame, video_length
from jobs.mask_io import write_indexed_png
from jobs.media import VideoInfo


def frame_png_name(frame: int) -> str:
    """DAVIS file name of a 0-based frame index: ``00012.png``."""
    return f"{frame:05d}.png"


def write_davis_pngs(out_dir: Path, video: VideoInfo, frames: Iterable[FrameMasks]) -> int:
    """Write every frame of the video as an indexed PNG into ``out_dir`` (created if needed).

    Args:
        out_dir: destination folder.
        video: size and length of the video.
        frames: per-frame masks in increasing frame order; object ids 1..254.

    Returns:
        The number of PNG files written (``video.num_frames``).
    """
    num_frames = video_length(video)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shape = (video.height, video.width)
    previous = -1
    for item in frames:
        check_frame(item, video, previous)
        for gap in range(previous + 1, item.frame):
            write_indexed_png(out_dir / frame_png_name(gap), {}, shape)
        masks = item.one_label_per_pixel()
        write_indexed_png(out_dir / frame_png_name(item.frame), masks, shape)
        previous = item.frame
    for gap in range(previous + 1, num_frames):
        write_indexed_png(out_dir / frame_png_name(gap), {}, shape)
    return num_frames
