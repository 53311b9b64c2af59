"""A tracker restored from a snapshot continues exactly as if never interrupted."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from jobs.prompts import Prompt
from worker.engines.sam2video.tracker import StreamingTracker


def test_restore_continues_bit_exactly(loaded_model, davis_root):
    paths = sorted((davis_root / "JPEGImages" / "car-turn").glob("*.jpg"))[:9]
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    prompts = [
        Prompt(1, 0, points=((500.0, 250.0),), labels=(1,)),
        Prompt(2, 2, box=(50.0, 50.0, 300.0, 300.0)),
    ]
    straight = StreamingTracker(loaded_model)
    first = StreamingTracker(loaded_model)
    for p in prompts:
        straight.add_prompt(p)
        first.add_prompt(p)
    expected = [straight.step(rgb) for rgb in frames]
    for rgb in frames[:5]:
        first.step(rgb)
    data = first.snapshot()
    resumed = StreamingTracker(loaded_model)
    resumed.restore(data)
    assert resumed.frame_idx == 5
    for t in range(5, 9):
        got = resumed.step(frames[t])
        assert set(got.objects) == {1, 2}
        for obj_id, ref in expected[t].objects.items():
            assert torch.equal(got.objects[obj_id].low_res_logits, ref.low_res_logits)
    # the snapshot is loadable without unpickling code
    assert b"frame_idx" in data
