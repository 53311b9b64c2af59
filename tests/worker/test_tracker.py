"""Streaming tracker behaviour beyond parity: bounded memory, corrections, removal."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jobs.errors import InputError
from jobs.prompts import Prompt
from worker.tracker import StreamingTracker


@pytest.fixture(scope="module")
def bear_frames(davis_root):
    paths = sorted((davis_root / "JPEGImages" / "bear").glob("*.jpg"))[:20]
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def test_memory_is_constant_in_video_length(loaded_model, bear_frames):
    tracker = StreamingTracker(loaded_model)
    tracker.add_prompt(Prompt(1, 0, points=((420.0, 260.0),), labels=(1,)))
    tracker.add_prompt(Prompt(2, 0, box=(100.0, 80.0, 380.0, 420.0)))
    sizes = []
    for rgb in bear_frames:
        result = tracker.step(rgb)
        sizes.append(tracker.bank.nbytes())
        assert set(result.objects) == {1, 2}
        assert result.objects[1].mask.shape == (480, 854)
    assert len(set(sizes[16:])) == 1
    assert sizes[-1] > sizes[0]


def test_remove_and_correct_objects(loaded_model, bear_frames):
    tracker = StreamingTracker(loaded_model)
    tracker.add_prompt(Prompt(1, 0, points=((420.0, 260.0),), labels=(1,)))
    tracker.add_prompt(Prompt(2, 0, points=((200.0, 200.0),), labels=(1,)))
    for rgb in bear_frames[:3]:
        tracker.step(rgb)
    tracker.remove_object(2)
    # a correction on frame 3: a negative click where the mask currently is
    plain = StreamingTracker(loaded_model)
    plain.add_prompt(Prompt(1, 0, points=((420.0, 260.0),), labels=(1,)))
    for rgb in bear_frames[:3]:
        plain.step(rgb)
    before = plain.step(bear_frames[3]).objects[1].mask
    ys, xs = np.nonzero(before)
    click = (float(xs[len(xs) // 2]), float(ys[len(ys) // 2]))
    tracker.add_prompt(Prompt(1, 3, points=(click,), labels=(0,)))
    after = tracker.step(bear_frames[3])
    assert set(after.objects) == {1}
    assert not np.array_equal(after.objects[1].mask, before)
    assert list(tracker.bank.objects[1].conditioning) == [0]  # a correction is not a new cond
    assert 3 in tracker.bank.objects[1].recent


def test_prompt_for_a_past_frame_is_refused(loaded_model, bear_frames):
    tracker = StreamingTracker(loaded_model)
    tracker.add_prompt(Prompt(1, 0, points=((420.0, 260.0),), labels=(1,)))
    tracker.step(bear_frames[0])
    with pytest.raises(InputError, match="after that frame was processed"):
        tracker.add_prompt(Prompt(1, 0, points=((10.0, 10.0),), labels=(1,)))
