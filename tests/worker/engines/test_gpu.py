"""On CUDA: the streaming tracker under bf16 autocast still follows the official predictor.

Skipped cleanly without CUDA (marker ``gpu``). Under bf16 the two runs are not bit-exact
(kernels and autocast order differ slightly), so masks are compared by IoU. The GPU benchmark
script's CPU dry run (``--device cpu --quick``) runs everywhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from configs.models import get_model_spec
from jobs.prompts import Prompt
from tests.conftest import TEST_MODEL, frames_folder
from worker.engines.sam2video.model import load_model
from worker.engines.sam2video.tracker import StreamingTracker

BENCH_GPU = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


def test_gpu_benchmark_dry_run_on_cpu(tmp_path):
    """Every case of the GPU benchmark runs end to end on CPU and agrees with the official
    predictor (same random checkpoint, float32 on CPU: masks agree but for the JPEG step)."""
    subprocess.run(
        [sys.executable, str(BENCH_GPU), "--device", "cpu", "--quick", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    rows = json.loads((tmp_path / "gpu_bench.json").read_text())
    cases = [row["case"] for row in rows]
    assert cases == ["official", "streamseg track", "streamseg e2e", "official VOS"]
    for row in rows:
        assert len(row["frame_s"]) == 3 and row["steady_fps"] > 0 and row["load_s"] > 0
        assert (
            row["iou_vs_official"] >= 0.95
        )  # streamseg decodes the H.264 clip, the official its JPEGs
    assert (tmp_path / "e2e-sam2.1-tiny-1" / "overlay.mp4").stat().st_size > 0
    table = (tmp_path / "gpu_bench.md").read_text()
    assert table.count("| sam2.1-tiny | 1 |") == 4


@pytest.mark.gpu
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
