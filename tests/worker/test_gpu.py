"""On CUDA: the streaming tracker under bf16 autocast still follows the official predictor.

Skipped cleanly without CUDA (marker ``gpu``). Under bf16 the two runs are not bit-exact
(kernels and autocast order differ slightly), so masks are compared by IoU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.models import get_model_spec
from jobs.prompts import Prompt
from tests.conftest import TEST_MODEL, frames_folder
from worker.sam2_model import load_model
from worker.tracker import StreamingTracker

pytestmark = pytest.mark.gpu


def test_cuda_bf16_masks_follow_official(sam2_checkpoint, davis_root, tmp_path):
    from sam2.build_sam import build_sam2_video_predictor

    folder = frames_folder(tmp_path / "f", davis_root / "JPEGImages" / "bear", 0, 24)
    spec = get_model_spec(TEST_MODEL)
    official = build_sam2_video_predictor(spec.config, str(sam2_checkpoint), device="cuda")
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        state = official.init_state(str(folder))
        official.add_new_points_or_box(state, 0, 1, points=[[420, 260]], labels=[1])
        reference = [(m[0, 0] > 0).cpu().numpy() for _, _, m in official.propagate_in_video(state)]
    loaded = load_model(spec, sam2_checkpoint, None, "cuda")
    assert loaded.autocast_dtype == torch.bfloat16
    tracker = StreamingTracker(loaded, num_frames=24)
    tracker.add_prompt(Prompt(1, 0, points=((420.0, 260.0),), labels=(1,)))
    ious = []
    for t in range(24):
        image = state["images"][t : t + 1].float().cuda()
        mask = tracker.step_preprocessed(image, (480, 854)).objects[1].mask
        union = np.logical_or(mask, reference[t]).sum()
        ious.append(np.logical_and(mask, reference[t]).sum() / max(union, 1))
    assert np.mean(ious) >= 0.98
