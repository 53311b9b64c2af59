"""The streaming tracker against the official ``SAM2VideoPredictor.propagate_in_video``.

Exact level: both are fed the same preprocessed frames (the official loader's tensors); mask
logits at the model's resolution and object scores must agree on every frame and object.
Negative cases prove the comparison can fail: a bank one memory frame or one object pointer
short must break it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from configs.models import get_model_spec
from jobs.prompts import Prompt
from memory.policy import MemoryPolicy
from tests.conftest import TEST_IMAGE_SIZE, TEST_MODEL, frames_folder
from worker.engines.sam2video.model import cached_model
from worker.engines.sam2video.tracker import PassCounts, StreamingTracker

SEQUENCE = "bear"
LONG_CLIP = 64  # > 60 frames: the bank has evicted most of them


@dataclass
class OfficialRun:
    """Per frame, per object id: (low-res logits (1,1,h,w), object score logit)."""

    images: torch.Tensor  # (T, 3, S, S) float32, the official loader's output
    video_hw: tuple[int, int]
    outputs: dict[int, dict[int, tuple[torch.Tensor, float]]]


def run_official(predictor, folder: Path, prompts: list[Prompt]) -> OfficialRun:
    state = predictor.init_state(str(folder))
    for p in prompts:
        if p.mask is not None:
            predictor.add_new_mask(state, p.frame, p.obj_id, p.mask)
        else:
            predictor.add_new_points_or_box(
                state,
                p.frame,
                p.obj_id,
                points=list(p.points) or None,
                labels=list(p.labels) or None,
                box=p.box,
            )
    for _ in predictor.propagate_in_video(state):
        pass
    outputs: dict[int, dict[int, tuple[torch.Tensor, float]]] = {}
    for obj_idx, obj_id in enumerate(state["obj_ids"]):
        per_obj = state["output_dict_per_obj"][obj_idx]
        for kind in ("cond_frame_outputs", "non_cond_frame_outputs"):
            for t, out in per_obj[kind].items():
                score = float(out["object_score_logits"].item())
                outputs.setdefault(t, {})[obj_id] = (out["pred_masks"].clone(), score)
    hw = (state["video_height"], state["video_width"])
    return OfficialRun(state["images"], hw, outputs)


def run_streaming(loaded, run: OfficialRun, prompts, policy=None, frames=None, offset=0):
    """Our tracker on the official run's preprocessed frames; same structure as outputs."""
    tracker = StreamingTracker(loaded, policy=policy, num_frames=len(run.images))
    for p in prompts:
        tracker.add_prompt(p)
    outputs = {}
    for t in range(frames or len(run.images)):
        result = tracker.step_preprocessed(run.images[t : t + 1].float(), run.video_hw)
        outputs[t + offset] = {
            o: (r.low_res_logits, r.score, r.mask) for o, r in result.objects.items()
        }
    return tracker, outputs


def max_differences(official, ours, obj_ids, frames, official_offset=0):
    logit_diff = score_diff = 0.0
    for t in frames:
        for obj_id in obj_ids:
            ref_logits, ref_score = official[t - official_offset][obj_id]
            logits, score, _ = ours[t][obj_id]
            logit_diff = max(logit_diff, (logits - ref_logits).abs().max().item())
            score_diff = max(score_diff, abs(score - ref_score))
    return logit_diff, score_diff


@pytest.fixture(scope="module")
def loaded_model(sam2_checkpoint: Path):
    """float32 explicitly: exactness is the float32 promise (``auto`` may choose bf16)."""
    spec = get_model_spec(TEST_MODEL)
    loaded = cached_model(spec, sam2_checkpoint, TEST_IMAGE_SIZE, "cpu", precision="fp32")
    assert loaded.autocast_dtype is None
    return loaded


@pytest.fixture(scope="module")
def bear_dir(davis_root: Path) -> Path:
    return davis_root / "JPEGImages" / SEQUENCE


@pytest.fixture(scope="module")
def bear_mask(davis_root: Path) -> np.ndarray:
    from jobs.prompts import load_mask

    return load_mask(davis_root / "Annotations" / SEQUENCE / "00000.png")


CLICK = Prompt(1, 0, points=((420.0, 260.0),), labels=(1,))


@pytest.fixture(scope="module")
def long_single(official_predictor, bear_dir, tmp_path_factory) -> OfficialRun:
    folder = frames_folder(tmp_path_factory.mktemp("long"), bear_dir, 0, LONG_CLIP)
    return run_official(official_predictor, folder, [CLICK])


def test_one_object_one_click_long_clip_is_exact(loaded_model, long_single):
    """(a)+(c): one click, 64 frames: the bank evicts all but 6 features / 15 pointers."""
    tracker, ours = run_streaming(loaded_model, long_single, [CLICK])
    frames = range(LONG_CLIP)
    logit_diff, score_diff = max_differences(long_single.outputs, ours, [1], frames)
    assert logit_diff <= 1e-5 and score_diff <= 1e-5
    fractions = [ours[t][1][2].mean() for t in frames]
    assert 0.01 < min(fractions) and max(fractions) < 0.99, "masks must be non-trivial"
    memory = tracker.bank.objects[1]
    assert list(memory.conditioning) == [0]
    assert list(memory.recent) == list(range(LONG_CLIP - 15, LONG_CLIP))


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(
            MemoryPolicy(num_recent_features=5, num_recent_pointers=15), id="one-frame-fewer"
        ),
        pytest.param(
            MemoryPolicy(num_recent_features=6, num_recent_pointers=14), id="one-pointer-fewer"
        ),
    ],
)
def test_a_smaller_bank_breaks_exactness(loaded_model, long_single, policy):
    frames = 24
    _, ours = run_streaming(loaded_model, long_single, [CLICK], policy=policy, frames=frames)
    logit_diff, _ = max_differences(long_single.outputs, ours, [1], range(frames))
    assert logit_diff > 1e-4


def test_three_objects_click_box_mask_batched(
    loaded_model, official_predictor, bear_dir, bear_mask, tmp_path
):
    """(b): a click, a box and a mask on frame 0; the three objects run as one batch."""
    prompts = [
        Prompt(1, 0, points=((420.0, 260.0), (200.0, 100.0)), labels=(1, 0)),
        Prompt(2, 0, box=(100.0, 80.0, 380.0, 420.0)),
        Prompt(3, 0, mask=bear_mask),
    ]
    folder = frames_folder(tmp_path / "clip", bear_dir, 0, 16)
    official = run_official(official_predictor, folder, prompts)
    tracker, ours = run_streaming(loaded_model, official, prompts)
    assert len(tracker._tracking_batches(tracker.object_ids)) == 1
    assert tracker.passes == PassCounts(memory_attention=1, mask_decoder=1, memory_encoder=1)
    logit_diff, score_diff = max_differences(official.outputs, ours, [1, 2, 3], range(16))
    assert logit_diff <= 1e-4 and score_diff <= 1e-4
    # the objects really differ (the batch did not collapse them)
    assert not np.array_equal(ours[10][1][2], ours[10][3][2])


def test_object_added_mid_stream(loaded_model, official_predictor, bear_dir, long_single, tmp_path):
    """(d): object 2 added at frame k equals the official run on the clip starting at k."""
    k, total = 8, 24
    late = Prompt(2, k, box=(150.0, 120.0, 420.0, 400.0))
    folder = frames_folder(tmp_path / "from_k", bear_dir, k, total - k)
    official_late = run_official(official_predictor, folder, [Prompt(2, 0, box=late.box)])
    tracker, ours = run_streaming(loaded_model, long_single, [CLICK, late], frames=total)
    # two memory layouts on the last frame: memory attention twice, the heads once
    assert tracker.passes == PassCounts(memory_attention=2, mask_decoder=1, memory_encoder=1)
    # object 2 against the clip that starts at k (same frames, shifted indices)
    diff_late, score_late = max_differences(
        official_late.outputs, ours, [2], range(k, total), official_offset=k
    )
    assert diff_late <= 1e-5 and score_late <= 1e-5
    # object 1 is untouched by the newcomer
    diff_first, _ = max_differences(long_single.outputs, ours, [1], range(total))
    assert diff_first <= 1e-5
    assert all(2 not in ours[t] for t in range(k))
