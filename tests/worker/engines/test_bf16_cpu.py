"""bf16 on CPU: attention through bf16 matrix multiplies, and weights stored in bf16."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from jobs.prompts import Prompt
from worker.engines.precision import attention_as_matmuls
from worker.engines.sam2video import attention
from worker.engines.sam2video.attention import MatmulAttention, matmul_attention
from worker.engines.sam2video.tracker import StreamingTracker

SHAPES = [  # q (..., L, E), keys S, budget in scores (small budgets force the chunked paths)
    ((1, 1, 64, 32), 100, attention.SCORE_BUDGET),
    ((2, 3, 50, 16), 70, attention.SCORE_BUDGET),
    ((2, 3, 50, 16), 70, 700),  # several batches per chunk, whole query range each
    ((1, 1, 50, 16), 70, 150),  # fewer rows than queries: the query range is split
    ((4, 50, 16), 33, 1),  # one row at a time, 3-dim inputs
]


@pytest.mark.parametrize(("q_shape", "keys", "budget"), SHAPES)
def test_matmul_attention_equals_sdpa_in_float32(monkeypatch, q_shape, keys, budget):
    monkeypatch.setattr(attention, "SCORE_BUDGET", budget)
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(q_shape, generator=gen) * 3
    k = torch.randn((*q_shape[:-2], keys, q_shape[-1]), generator=gen) * 3
    v = torch.randn((*q_shape[:-2], keys, 24), generator=gen)
    expected = F.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(matmul_attention(q, k, v), expected, atol=1e-5)
    scaled = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert torch.allclose(matmul_attention(q, k, v, scale=0.3), scaled, atol=1e-5)


def _qkv(dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(1)
    return tuple((torch.randn(2, 1, 40, 32, generator=gen) * 4).to(dtype) for _ in range(3))


def test_the_mode_routes_only_plain_bf16_cpu_attention():
    q, k, v = _qkv(torch.bfloat16)
    outside = F.scaled_dot_product_attention(q, k, v)
    mask = torch.ones(40, 40, dtype=torch.bool).tril()
    with MatmulAttention():
        routed = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0)
        masked = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        fp32 = F.scaled_dot_product_attention(*(t.float() for t in (q, k, v)))
    assert torch.equal(routed, matmul_attention(q, k, v))
    assert not torch.equal(routed, outside)  # a different kernel really ran
    error = (routed.float() - outside.float()).abs()  # scores rounded to bf16: a few %
    assert error.max() <= 0.05 * outside.float().abs().max() and error.mean() <= 0.02
    assert torch.equal(masked, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert torch.equal(fp32, F.scaled_dot_product_attention(*(t.float() for t in (q, k, v))))


@pytest.fixture(scope="module")
def bear_frames(davis_root):
    paths = sorted((davis_root / "JPEGImages" / "bear").glob("*.jpg"))[:3]
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def test_stored_bf16_weights_give_identical_logits(sam2_checkpoint, bear_frames):
    """Weights stored in bf16 ahead of time = autocast casting them on every call, bit for
    bit; the fp32-weight model with the same module graph (values projected after attending)
    run under the same bf16 autocast is the reference."""
    from configs.models import get_model_spec
    from tests.conftest import TEST_IMAGE_SIZE, TEST_MODEL
    from worker.engines.sam2video.model import load_model
    from worker.engines.sam2video.value_projection import project_values_after_attending

    spec = get_model_spec(TEST_MODEL)
    stored = load_model(spec, sam2_checkpoint, TEST_IMAGE_SIZE, "cpu", precision="bf16")
    fp32 = load_model(spec, sam2_checkpoint, TEST_IMAGE_SIZE, "cpu", precision="fp32")
    if attention_as_matmuls(torch.bfloat16, torch.device("cpu")):
        project_values_after_attending(fp32.model)
    cast_per_call = dataclasses.replace(fp32, autocast_dtype=torch.bfloat16)
    head = "sam_mask_decoder.iou_prediction_head.layers.0.weight"
    assert stored.model.get_parameter(head).dtype == torch.bfloat16
    assert fp32.model.get_parameter(head).dtype == torch.float32
    trackers = [StreamingTracker(stored), StreamingTracker(cast_per_call)]
    for tracker in trackers:
        tracker.add_prompt(Prompt(1, 0, points=((420.0, 260.0),), labels=(1,)))
    for rgb in bear_frames:
        ours, reference = (tracker.step(rgb).objects[1] for tracker in trackers)
        assert torch.equal(ours.low_res_logits, reference.low_res_logits)
        assert ours.score == reference.score


# ----- the value projection behind the memory cross-attention ---------------------------------
def _cross_attention_inputs(layer, batch: int = 2, side: int = 8, frames: int = 3):
    """What a memory-attention layer's cross-attention gets: q (B, side^2, 256), keys and
    values (B, frames x side^2 + 4 pointer tokens, 64), 4 of them excluded from RoPE."""
    gen = torch.Generator().manual_seed(2)
    attention = layer.cross_attn_image
    tokens = frames * side * side + 4
    channels = attention.v_proj.in_features
    q = torch.randn(batch, side * side, attention.q_proj.in_features, generator=gen)
    k = torch.randn(batch, tokens, channels, generator=gen)
    v = torch.randn(batch, tokens, channels, generator=gen)
    return q, k, v


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_projecting_values_after_attending_keeps_sam2s_cross_attention(sam2_checkpoint, dtype):
    """The rewired layer computes what sam2's own does: within 1e-5 in float32 (only the
    order of the sums differs), within bf16 rounding under bf16 autocast."""
    import copy

    from configs.models import get_model_spec
    from tests.conftest import TEST_IMAGE_SIZE, TEST_MODEL
    from worker.engines.sam2video.model import load_model
    from worker.engines.sam2video.value_projection import (
        AutocastValues,
        project_values_after_attending,
    )

    spec = get_model_spec(TEST_MODEL)
    official = load_model(spec, sam2_checkpoint, TEST_IMAGE_SIZE, "cpu", precision="fp32").model
    rewired = copy.deepcopy(official)
    assert project_values_after_attending(rewired) == len(official.memory_attention.layers) == 4
    assert project_values_after_attending(rewired) == 0  # already rewired: left as it is
    pairs = zip(official.memory_attention.layers, rewired.memory_attention.layers, strict=True)
    for before, after in pairs:
        assert isinstance(after.cross_attn_image.v_proj, AutocastValues)
        assert not isinstance(before.cross_attn_image.v_proj, AutocastValues)
        q, k, v = _cross_attention_inputs(before)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
        with torch.inference_mode(), autocast:
            expected = before.cross_attn_image(q, k, v, num_k_exclude_rope=4).float()
            got = after.cross_attn_image(q, k, v, num_k_exclude_rope=4).float()
        assert got.shape == expected.shape == q.shape
        error = (got - expected).abs().max().item()
        if dtype == torch.float32:
            assert error <= 1e-5 and not torch.equal(got, expected)
        else:  # bf16 rounds the 256-channel values differently: about 2^-8 relative
            assert error <= 0.02 * expected.abs().max().item()


def test_only_bf16_cpu_models_with_matmul_attention_are_rewired(sam2_checkpoint):
    """float32 keeps the official module graph (exact against the official predictor), and so
    does bf16 where attention runs in PyTorch's flash kernel (AMX CPUs)."""
    from configs.models import get_model_spec
    from tests.conftest import TEST_IMAGE_SIZE, TEST_MODEL
    from worker.engines.sam2video.model import load_model
    from worker.engines.sam2video.value_projection import AutocastValues

    spec = get_model_spec(TEST_MODEL)
    as_matmuls = attention_as_matmuls(torch.bfloat16, torch.device("cpu"))
    for precision, rewired in (("bf16", as_matmuls), ("fp32", False)):
        model = load_model(spec, sam2_checkpoint, TEST_IMAGE_SIZE, "cpu", precision).model
        layers = model.memory_attention.layers
        identities = [isinstance(x.cross_attn_image.v_proj, AutocastValues) for x in layers]
        assert identities == [rewired] * len(layers)
