"""Streaming tracker behaviour beyond parity: bounded memory, corrections, removal."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from configs.errors import InputError
from jobs.prompts import Prompt
from worker.engines.sam2video.tracker import PassCounts, StreamingTracker


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


# ----- many objects: a bounded count, batched passes, progress within a frame ---------------
def test_more_objects_than_the_limit_are_refused(loaded_model):
    from configs.models import MAX_OBJECTS

    tracker = StreamingTracker(loaded_model)
    for obj_id in range(1, MAX_OBJECTS + 1):
        tracker.add_prompt(Prompt(obj_id, 0, points=((10.0, 10.0),), labels=(1,)))
    tracker.add_prompt(Prompt(1, 0, points=((20.0, 20.0),), labels=(1,)))  # same object again
    with pytest.raises(InputError, match=f"at most {MAX_OBJECTS} objects"):
        tracker.add_prompt(Prompt(MAX_OBJECTS + 1, 0, box=(1.0, 1.0, 50.0, 50.0)))
    tracker.remove_object(3)  # a removed object frees its place
    tracker.add_prompt(Prompt(MAX_OBJECTS + 1, 0, box=(1.0, 1.0, 50.0, 50.0)))


MIXED_PROMPTS = [  # three prompt forms: one click (x3), a box, two clicks
    Prompt(1, 0, points=((420.0, 260.0),), labels=(1,)),
    Prompt(2, 0, points=((200.0, 200.0),), labels=(1,)),
    Prompt(3, 0, box=(100.0, 80.0, 380.0, 420.0)),
    Prompt(4, 0, points=((600.0, 300.0), (650.0, 320.0)), labels=(1, 0)),
    Prompt(5, 0, points=((700.0, 100.0),), labels=(1,)),
]


def _run(loaded_model, frames, object_batch, on_objects=None):
    tracker = StreamingTracker(loaded_model, object_batch=object_batch, on_objects=on_objects)
    for prompt in MIXED_PROMPTS:
        tracker.add_prompt(prompt)
    results, passes = [], []
    for rgb in frames:
        results.append(tracker.step(rgb))
        passes.append(tracker.passes)
    return results, passes


def test_objects_run_in_bounded_batches_with_progress(loaded_model, bear_frames):
    """Batches of 2: the same results as one object at a time, fewer passes, and progress
    reported after every batch within the frame."""
    frames = bear_frames[:3]
    calls = []
    batched, passes = _run(loaded_model, frames, 2, lambda done, total: calls.append((done, total)))
    single, single_passes = _run(loaded_model, frames, 1)
    # frame 0: clicks {1, 2} {5} (batch size 2), box {3}, two clicks {4}: 4 decoder passes
    assert passes[0].mask_decoder == 4 and single_passes[0].mask_decoder == 5
    assert calls[:4] == [(2, 5), (3, 5), (4, 5), (5, 5)]
    # later frames: one memory layout, 5 objects in batches of 2 -> 3 passes of each part
    assert passes[2] == PassCounts(memory_attention=3, mask_decoder=3, memory_encoder=3)
    assert single_passes[2].mask_decoder == 5
    assert calls[4:7] == [(2, 5), (4, 5), (5, 5)]
    for ours, reference in zip(batched, single, strict=True):
        for obj_id, obj in ours.objects.items():
            diff = (obj.low_res_logits - reference.objects[obj_id].low_res_logits).abs().max()
            assert diff <= 1e-4
            assert abs(obj.score - reference.objects[obj_id].score) <= 1e-4
    assert len({ours.objects[o].mask.sum() for o in range(1, 6)}) > 1  # objects differ


# ----- look-ahead image encoding -------------------------------------------------------------
def test_look_ahead_batch_encoding_matches_one_frame_at_a_time(loaded_model, bear_frames):
    import torch

    from worker.engines.sam2video.preprocess import preprocess_frame

    frames = bear_frames[:4]
    size = loaded_model.image_size
    images = torch.cat([preprocess_frame(f, size, loaded_model.device) for f in frames])
    with torch.inference_mode():
        batch = loaded_model.model.forward_image(images)
        for i in range(len(frames)):
            single = loaded_model.model.forward_image(images[i : i + 1])
            for key in ("backbone_fpn", "vision_pos_enc"):
                for a, b in zip(batch[key], single[key], strict=True):
                    assert (a[i : i + 1] - b).abs().max().item() <= 1e-5
    ahead = StreamingTracker(loaded_model)
    plain = StreamingTracker(loaded_model)
    for tracker in (ahead, plain):
        tracker.add_prompt(Prompt(1, 0, points=((420.0, 260.0),), labels=(1,)))
        tracker.add_prompt(Prompt(2, 2, box=(100.0, 80.0, 380.0, 420.0)))  # inside the window
    results = ahead.step_many(frames)
    assert [r.frame_idx for r in results] == [0, 1, 2, 3] and ahead.frame_idx == 4
    for result, rgb in zip(results, frames, strict=True):
        reference = plain.step(rgb)
        assert set(result.objects) == set(reference.objects)
        for obj_id, obj in result.objects.items():
            ref = reference.objects[obj_id]
            assert (obj.low_res_logits - ref.low_res_logits).abs().max().item() <= 1e-4
            assert np.array_equal(obj.mask, ref.mask)


# ----- precision -------------------------------------------------------------------------------
def test_precision_choice():
    import torch

    from worker.engines.precision import autocast_dtype, cpu_has_bf16_matmul

    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cpu) is (torch.bfloat16 if cpu_has_bf16_matmul() else None)
    with pytest.raises(InputError, match="unknown precision 'fp16'"):
        autocast_dtype("fp16", cpu)


def test_bf16_on_cpu_follows_float32(sam2_checkpoint, bear_frames):
    """bf16 autocast on CPU runs the whole tracker and stays close to float32 (not exact)."""
    import torch

    from configs.models import get_model_spec
    from tests.conftest import TEST_IMAGE_SIZE, TEST_MODEL
    from worker.engines.sam2video.model import load_model

    spec = get_model_spec(TEST_MODEL)
    bf16 = load_model(spec, sam2_checkpoint, TEST_IMAGE_SIZE, "cpu", precision="bf16")
    assert bf16.autocast_dtype is torch.bfloat16
    fp32 = load_model(spec, sam2_checkpoint, TEST_IMAGE_SIZE, "cpu", precision="fp32")
    trackers = [StreamingTracker(bf16), StreamingTracker(fp32)]
    for tracker in trackers:
        tracker.add_prompt(Prompt(1, 0, points=((420.0, 260.0),), labels=(1,)))
    for rgb in bear_frames[:2]:
        low, full = (tracker.step(rgb).objects[1] for tracker in trackers)
        assert low.low_res_logits.dtype == torch.float32
        iou = (low.mask & full.mask).sum() / max((low.mask | full.mask).sum(), 1)
        assert iou >= 0.9
        assert not torch.equal(low.low_res_logits, full.low_res_logits)  # bf16 really ran


# ----- compile ----------------------------------------------------------------------------------
def test_compile_covers_what_the_official_vos_predictor_compiles(sam2_checkpoint):
    """The same components as ``SAM2VideoPredictorVOS`` (read from its source), each wrapped
    (compilation itself is lazy and measured by tests/benchmarks/bench_compile.py)."""
    import inspect
    import re

    from sam2.sam2_video_predictor import SAM2VideoPredictorVOS

    from configs.models import get_model_spec
    from tests.conftest import TEST_MODEL
    from worker.engines.sam2video.compile import COMPILED_COMPONENTS
    from worker.engines.sam2video.model import load_model

    source = inspect.getsource(SAM2VideoPredictorVOS._compile_all_components)
    official = set(re.findall(r"self\.(\w+)\.forward = torch\.compile", source))
    official.add("image_encoder")  # via ++model.compile_image_encoder=True (sam2_base)
    assert {name for name, _ in COMPILED_COMPONENTS} == official
    loaded = load_model(get_model_spec(TEST_MODEL), sam2_checkpoint, 128, "cpu", "fp32", True)
    assert loaded.compiled
    for name in official:
        forward = getattr(loaded.model, name).forward
        assert getattr(forward, "_torchdynamo_orig_callable", None) is not None, name
