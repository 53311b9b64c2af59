"""First-frame adaptation: a per-object linear head on the frozen descriptors.

When an object is first prompted, a logistic regression (L2-regularised, fitted by a few
Newton steps, deterministic) learns object against everything else from that frame's
descriptors and its mask. On later frames its probability multiplies the readout's foreground
(never below ``floor``), as OSVOS's per-video fine-tuning specialises a network to the prompted
object, here in milliseconds and on frozen features only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class HeadParams:
    """``floor`` < 1 enables the head (1.0: off); ``l2``: ridge weight per sample."""

    floor: float = 1.0
    l2: float = 1e-3
    steps: int = 8


def fit_head(desc: torch.Tensor, soft: torch.Tensor, params: HeadParams) -> torch.Tensor:
    """(d, h, w) descriptors, (h, w) soft mask -> (d + 1,) float32 weights (bias last)."""
    x = torch.cat([desc.flatten(1), torch.ones(1, desc.shape[1] * desc.shape[2])]).double().t()
    y = (soft.flatten().double() > 0.5).double()
    n, dim = x.shape
    # balance the classes so a small object is not drowned by its background
    pos = float(y.sum().clamp(1.0, n - 1.0))
    sample = torch.where(y > 0, n / (2 * pos), n / (2 * (n - pos))) / n
    w = torch.zeros(dim, dtype=torch.float64)
    ridge = params.l2 * torch.eye(dim, dtype=torch.float64)
    ridge[-1, -1] = 0.0
    for _ in range(params.steps):
        p = torch.sigmoid(x @ w)
        grad = x.t() @ (sample * (p - y)) + ridge @ w
        hess = (x * (sample * p * (1 - p))[:, None]).t() @ x + ridge
        w = w - torch.linalg.solve(hess + 1e-9 * torch.eye(dim, dtype=torch.float64), grad)
    return w.float()


def head_gate(desc: torch.Tensor, weights: torch.Tensor, params: HeadParams) -> torch.Tensor:
    """(d, h, w) descriptors -> (h, w) multiplier in [floor, 1]."""
    logits = torch.einsum("dhw,d->hw", desc, weights[:-1]) + weights[-1]
    return params.floor + (1.0 - params.floor) * torch.sigmoid(logits)
