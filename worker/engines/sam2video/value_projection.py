"""Memory cross-attention that averages the memory tokens first and projects the averages.

Each layer of SAM 2's memory attention cross-attends from the frame's tokens (1,024 at 512 px)
to every memory token (7 frames x 1,024 plus the object pointers, 64 channels each). ``sam2``'s
``RoPEAttention`` (one head in every SAM 2 and 2.1 config) computes
``out_proj(P @ v_proj(X))``: it projects all 7,200 memory tokens X to 256 channels, then
averages them with the softmax weights P. Each row of P sums to one, so this equals
``out_proj(v_proj(P @ X))``: average the 64-channel tokens, then project the 1,024 averages.
That is a quarter of the ``P @ V`` multiply-adds and no value projection of the memory: with 8
objects at 512 px one layer's cross-attention takes 92 ms instead of 124 on an AVX-512 BF16
CPU, a tracked frame 2-8 % less (``BENCHMARKS.md``, issue 11).

:func:`project_values_after_attending` rewires the model's own modules, without new code in
the forward pass: the value projection moves behind the attention (``v_proj`` becomes
:class:`AutocastValues`, ``out_proj`` becomes ``v_proj`` then ``out_proj``), and ``sam2``'s
forward runs as it is. The result is equal in exact arithmetic, not bit for bit, so
``worker.engines.sam2video.model`` applies it only to bf16 models on CPUs without AMX, where
attention runs as bf16 matrix multiplies (``worker.engines.precision.attention_as_matmuls``).
float32 keeps the official module graph, exact against the official predictor; with AMX,
PyTorch's flash kernel runs the attention, and it needs values as wide as the keys (it would
fall back to its slow reference kernel). Inference only: with attention dropout (training)
the rows of P no longer sum to one.
"""

from __future__ import annotations

import torch
from sam2.modeling.sam.transformer import Attention


class AutocastValues(torch.nn.Module):
    """Stands in for ``v_proj``: the memory tokens (B, S, C) as the projection would have
    handed them to the attention, in the autocast dtype where autocast is on (its output
    dtype) and contiguous (``sam2`` passes them as a transposed view); otherwise unchanged."""

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        device = values.device.type
        if torch.is_autocast_enabled(device):
            values = values.to(torch.get_autocast_dtype(device))
        return values.contiguous()


def can_project_after_attending(attention: torch.nn.Module) -> bool:
    """Whether ``attention`` is a one-head ``sam2`` attention whose values come from fewer
    channels than it attends in (the memory cross-attention: 64 against 256), not yet
    rewired."""
    return (
        isinstance(attention, Attention)
        and attention.num_heads == 1
        and isinstance(attention.v_proj, torch.nn.Linear)
        and attention.v_proj.in_features < attention.v_proj.out_features
    )


def project_values_after_attending(model: torch.nn.Module) -> int:
    """Rewire the cross-attention of each of ``model``'s memory-attention layers (in place);
    returns how many were rewired."""
    count = 0
    for layer in model.memory_attention.layers:
        attention = layer.cross_attn_image
        if can_project_after_attending(attention):
            attention.out_proj = torch.nn.Sequential(attention.v_proj, attention.out_proj)
            attention.v_proj = AutocastValues()
            count += 1
    return count
