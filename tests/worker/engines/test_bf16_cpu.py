"""bf16 on CPU: attention through bf16 matrix multiplies, and weights stored in bf16."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from jobs.prompts import Prompt
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
    bit; the fp32-weight model run under the same bf16 autocast is the reference."""
    from configs.models import get_model_spec
    from tests.conftest import TEST_IMAGE_SIZE, TEST_MODEL
    from worker.engines.sam2video.model import load_model

    spec = get_model_spec(TEST_MODEL)
    stored = load_model(spec, sam2_checkpoint, TEST_IMAGE_SIZE, "cpu", precision="bf16")
    fp32 = load_model(spec, sam2_checkpoint, TEST_IMAGE_SIZE, "cpu", precision="fp32")
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
