"""Test clips written with PyAV (libx264 by default)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rate: int = 10,
    rotation: int | None = None,
    hflip: bool = False,
) -> None:
    """Encode (H, W, 3) uint8 RGB frames with PyAV; ``rotation`` sets a display matrix."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if rotation is not None:
            stream.set_display_rotation(rotation, hflip=hflip)
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
