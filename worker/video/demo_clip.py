"""A synthetic sample clip with exact ground truth, made on the spot (nothing shipped).

A textured ellipse moves, turns and changes size over a textured background; its mask is
known exactly on every frame, so a demo run can report the J&F it reached.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np


@dataclass(frozen=True)
class SampleFrame:
    """``rgb``: (H, W, 3) uint8; ``mask``: (H, W) bool ground truth of object 1."""

    index: int
    rgb: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class SampleSpec:
    width: int = 480
    height: int = 272
    frames: int = 48
    fps: int = 24
    seed: int = 7


def _texture(rng: np.random.Generator, height: int, width: int, scale: int) -> np.ndarray:
    """Smooth colour noise: (H, W, 3) float32 in [0, 255]."""
    small = rng.uniform(0, 255, size=(height // scale + 2, width // scale + 2, 3))
    big = cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0, 255)


def sample_frames(spec: SampleSpec = SampleSpec()) -> Iterator[SampleFrame]:
    """The clip, frame by frame (deterministic for a given ``spec``)."""
    rng = np.random.default_rng(spec.seed)
    background = 0.6 * _texture(rng, spec.height, spec.width, 32) + 40
    skin = 0.5 * _texture(rng, 2 * spec.height, 2 * spec.width, 6)
    skin += np.array([120, 30, 10], np.float32)
    for index in range(spec.frames):
        phase = index / max(spec.frames - 1, 1)
        center = (
            int(spec.width * (0.25 + 0.5 * phase)),
            int(spec.height * (0.5 + 0.2 * np.sin(2 * np.pi * phase))),
        )
        axes = (int(spec.width * (0.12 + 0.03 * phase)), int(spec.height * 0.16))
        mask = np.zeros((spec.height, spec.width), np.uint8)
        cv2.ellipse(mask, center, axes, 30 * phase, 0, 360, 1, thickness=-1)
        top, left = spec.height - center[1], spec.width - center[0]  # texture moves with it
        skin_now = skin[top : top + spec.height, left : left + spec.width]
        frame = np.where(mask[..., None] > 0, np.clip(skin_now, 0, 255), background)
        yield SampleFrame(index, frame.astype(np.uint8), mask.astype(bool))


def write_sample_video(path: Path, spec: SampleSpec = SampleSpec()) -> list[np.ndarray]:
    """Encode the clip to H.264 at ``path``; returns the ground-truth masks (small: bool)."""
    masks = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.options = {"crf": "18"}
        for sample in sample_frames(spec):
            frame = av.VideoFrame.from_ndarray(sample.rgb, format="rgb24")
            frame.pts = sample.index
            container.mux(stream.encode(frame))
            masks.append(sample.mask)
        container.mux(stream.encode())
    return masks
