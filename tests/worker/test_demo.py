"""The demo's synthetic clip: deterministic, with exact ground truth that moves."""

from __future__ import annotations

import numpy as np

from jobs.mask_codec import mask_bbox
from worker.video.demo_clip import SampleSpec, sample_frames, write_sample_video
from worker.video.source import open_video


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


def test_demo_runs_offline_on_lite_and_tracks_the_object(tmp_path, monkeypatch, capsys):
    """The README's main job: no checkpoint anywhere -> the lite engine, real J&F printed."""
    from jobs.tracks import read_tracks
    from worker.cli import main

    monkeypatch.setenv("STREAMSEG_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("STREAMSEG_MODEL_MIRROR", "http://127.0.0.1:9")  # no network either
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "using the built-in 'lite' model" in captured.err
    jf = float(captured.out.strip().splitlines()[-1].rsplit(":", 1)[1])
    assert jf >= 0.8, captured.out
    tracks = read_tracks(out / "tracks.json")
    assert tracks.model.name == "lite" and tracks.video.num_frames == SampleSpec().frames
    truth = list(sample_frames(SampleSpec()))
    last = tracks.masks_at(len(truth) - 1)[1]
    iou = (last & truth[-1].mask).sum() / (last | truth[-1].mask).sum()
    assert iou > 0.8  # still on the object at the end, after it moved across the frame
    with open_video(out / "overlay.mp4") as overlay:
        assert sum(1 for _ in overlay) == SampleSpec().frames
