"""Checkpoints and resume in-process, with a stand-in tracker (the real one: test_queue_resume).

The stand-in is deterministic and fast, so interrupting a run twice and resuming it from the
stored saves can be compared byte for byte with an uninterrupted run in a second.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jobs.media import ModelInfo
from jobs.output_names import TRACKS_FILE
from jobs.prompts import Prompt
from jobs.storage import Retrier, open_location
from jobs.tracks import spool_path_for
from worker.engines.contract import FrameResult, ObjectResult
from worker.pipeline.segment import (
    Cancelled,
    ResumeFailed,
    ResumeFrom,
    SegmentRequest,
    segment_video,
)
from worker.runtimes.queue.job_checkpoint import Checkpointer, CheckpointStore, restore

FRAMES, WIDTH, HEIGHT = 11, 40, 30
PROMPTS = [Prompt(1, 0, points=((5.0, 5.0),), labels=(1,)), Prompt(2, 5, box=(1, 1, 20, 20))]


class StripeTracker:
    """Each object is a row stripe moving down a row a frame; hidden every third frame."""

    def __init__(self) -> None:
        self.frame_idx = 0
        self.objects: list[int] = []

    def add_prompt(self, prompt: Prompt) -> None:
        self.objects = sorted({*self.objects, prompt.obj_id})

    def step(self, rgb: np.ndarray) -> FrameResult:
        results = {}
        for obj_id in self.objects:
            mask = np.zeros(rgb.shape[:2], bool)
            mask[(self.frame_idx * 3 + obj_id * 7) % rgb.shape[0], obj_id:] = True
            score = -1.0 if (self.frame_idx + obj_id) % 3 == 0 else 2.5
            results[obj_id] = ObjectResult(obj_id, torch.zeros(1, 1, 4, 4), mask, score)
        self.frame_idx += 1
        return FrameResult(self.frame_idx - 1, results)

    def snapshot(self) -> bytes:
        return json.dumps({"frame": self.frame_idx, "objects": self.objects}).encode()

    def restore(self, data: bytes) -> None:
        state = json.loads(data)
        self.frame_idx, self.objects = state["frame"], state["objects"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    rng = np.random.default_rng(0)
    for index in range(FRAMES):
        pixels = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05d}.png")
    return folder


def _run(clip: Path, out: Path, stop_at: int | None = None, **hooks):
    def should_stop() -> bool:
        return stop_at is not None and hooks_frame[0] >= stop_at

    hooks_frame = [0]
    before = hooks.pop("before_frame", None)

    def before_frame(index: int, tracker) -> None:
        if before is not None:
            before(index, tracker)
        hooks_frame[0] = index + 1

    request = SegmentRequest(source=str(clip), out_dir=out, prompts=PROMPTS)
    return segment_video(request, lambda info: StripeTracker(), ModelInfo(name="stripes"),
                         should_stop=should_stop, before_frame=before_frame, **hooks)  # fmt: skip


def test_twice_interrupted_run_resumes_to_identical_outputs(clip, tmp_path):
    reference = tmp_path / "reference"
    _run(clip, reference)
    store = CheckpointStore(open_location(f"memory://ckpt/{uuid.uuid4().hex}"), Retrier(1, 0))
    identity = ("job", "digest")

    first = tmp_path / "first"
    saves = Checkpointer(store, spool_path_for(first / TRACKS_FILE), 2, identity)
    with pytest.raises(Cancelled):
        _run(clip, first, stop_at=7, before_frame=saves)  # tracks 0-6; save 4 lands at 6
    state = store.load(*identity)
    assert (saves.saved_frames, state.frame) == ([2, 4], 4)
    assert not (first / TRACKS_FILE).exists()

    second = tmp_path / "second"
    resume = restore(store, state, spool_path_for(second / TRACKS_FILE))
    saves = Checkpointer(store, spool_path_for(second / TRACKS_FILE), 2, identity, state)
    with pytest.raises(Cancelled):
        _run(clip, second, stop_at=9, resume=resume, before_frame=saves)  # 6 lands at 8
    state = store.load(*identity)
    assert (saves.saved_frames, state.frame) == ([6], 6)

    third = tmp_path / "third"
    resume = restore(store, state, spool_path_for(third / TRACKS_FILE))
    summary = _run(clip, third, resume=resume)
    assert (summary.num_frames, summary.object_ids) == (FRAMES, [1, 2])
    for name in ("tracks.json", "overlay.mp4"):
        assert (third / name).read_bytes() == (reference / name).read_bytes(), name


def test_a_damaged_snapshot_is_refused(clip, tmp_path):
    with pytest.raises(ResumeFailed, match="cannot restore the tracker"):
        _run(clip, tmp_path, resume=ResumeFrom(frame=4, tracker_state=b"not a snapshot"))
