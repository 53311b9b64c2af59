"""bf16 attention on CPU through bf16 matrix multiplies, for the ``sam2`` modules' own calls.

PyTorch's CPU flash-attention kernel computes bf16 inputs at float32 speed: on this project's
CPUs (AVX-512 BF16 / AMX) a ``scaled_dot_product_attention`` of 1,024 queries over 7,204
memory tokens (SAM 2 memory attention at 512 px) takes as long in bf16 as in float32, while
the same attention as two batched bf16 matrix multiplies and a softmax takes half of that
(``BENCHMARKS.md``, issue 11). :class:`MatmulAttention` is a ``TorchFunctionMode`` that routes
the ``F.scaled_dot_product_attention`` calls made inside it (by ``sam2``'s Hiera blocks and
its RoPE attention, whose code is reused unchanged) through :func:`matmul_attention` when
their inputs are bf16 on CPU; every other call passes through untouched. Modes are
thread-local, so only the thread that enters it is affected.

It changes results only within bf16 rounding (scores are rounded to bf16 before the
softmax); float32 runs never enter it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

# Scores computed at once, at most (elements): bounds the extra memory of one call to
# 2 x 32 Mi x 2 bytes (scores and probabilities in bf16) whatever the image size or batch.
SCORE_BUDGET = 32 * 1024 * 1024


def matmul_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """softmax(q k^T * scale) v for q (..., L, E), k (..., S, E), v (..., S, Ev), one dtype.

    Returns (..., L, Ev) in that dtype; leading dims broadcast as in ``torch.matmul`` are not
    supported (q, k and v share them). Computed in chunks of at most ``SCORE_BUDGET`` scores.
    """
    *lead, length, dim = q.shape
    keys, out_dim = k.shape[-2], v.shape[-1]
    scale = dim**-0.5 if scale is None else scale
    q3, k3, v3 = q.reshape(-1, length, dim), k.reshape(-1, keys, dim), v.reshape(-1, keys, out_dim)
    out = q3.new_empty(q3.shape[0], length, out_dim)
    rows = max(1, SCORE_BUDGET // keys)  # query rows per chunk, over (batch, query) pairs
    per_batch, step = max(1, rows // length), min(length, rows)
    for b in range(0, q3.shape[0], per_batch):
        batch = slice(b, b + per_batch)
        for i in range(0, length, step):
            queries = q3[batch, i : i + step]
            scores = torch.baddbmm(
                queries.new_empty(queries.shape[0], queries.shape[1], keys),
                queries, k3[batch].transpose(1, 2), beta=0.0, alpha=scale,
            )  # fmt: skip
            torch.bmm(torch.softmax(scores, dim=-1), v3[batch], out=out[batch, i : i + step])
    return out.reshape(*lead, length, out_dim)


def _routable(args: tuple, kwargs: dict) -> bool:
    """A plain attention call (no mask, no dropout, not causal) on same-shaped bf16 CPU
    tensors of at least 3 dims."""
    plain = (
        len(args) == 3
        and kwargs.get("attn_mask") is None
        and not kwargs.get("dropout_p")
        and not kwargs.get("is_causal")
        and not set(kwargs) - {"attn_mask", "dropout_p", "is_causal", "scale"}
    )
    if not plain:
        return False
    q, k, v = args
    tensors = all(isinstance(t, torch.Tensor) for t in (q, k, v))
    return (
        tensors
        and all(t.dtype == torch.bfloat16 and t.device.type == "cpu" for t in (q, k, v))
        and q.dim() >= 3
        and q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
    )


class MatmulAttention(TorchFunctionMode):
    """Inside ``with MatmulAttention():`` bf16 CPU attention runs as :func:`matmul_attention`."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and _routable(args, kwargs):
            return matmul_attention(*args, scale=kwargs.get("scale"))
        return func(*args, **kwargs)
