"""The demo's synthetic clip: deterministic, with exact ground truth that moves."""

from __future__ import annotations

import numpy as np

from jobs.tracks import mask_bbox
from worker.demo_video import SampleSpec, sample_frames, write_sample_video
from worker.video_source import open_video


def test_sample_is_deterministic_and_its_object_moves():
    spec = SampleSpec(frames=12)
    first = list(sample_frames(spec))
    again = list(sample_frames(spec))
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(first, again, strict=True))
    boxes = [mask_bbox(f.mask) for f in first]
    assert boxes[-1][0] > boxes[0][0] + 100  # moved right by > 100 px
    inside = first[5].rgb[first[5].mask].mean(axis=0)
    outside = first[5].rgb[~first[5].mask].mean(axis=0)
    assert inside[0] > outside[0] + 40  # the object is redder than the background


def test_sample_video_decodes_to_the_frames(tmp_path):
    spec = SampleSpec(frames=10)
    masks = write_sample_video(tmp_path / "s.mp4", spec)
    assert len(masks) == 10
    with open_video(tmp_path / "s.mp4") as video:
        decoded = list(video)
    assert len(decoded) == 10 and video.info.width == spec.width
    reference = list(sample_frames(spec))
    error = np.abs(decoded[4].rgb.astype(int) - reference[4].rgb.astype(int)).mean()
    assert error < 6  # H.264 at crf 18: close to the source
