"""Checkpoints with random weights, for tests and benchmarks on machines without the real ones.

A randomly initialised SAM 2 predicts "no object" everywhere; the object-score head's bias is
raised so that masks are non-trivial and the memory path is exercised for real.
"""

from __future__ import annotations

from pathlib import Path

import torch

from configs.models import ModelSpec
from worker.engines.sam2video.model import build_sam2

OBJECT_SCORE_BIAS = 4.0


@torch.no_grad()
def make_random_checkpoint(
    spec: ModelSpec, path: Path, seed: int = 0, image_size: int | None = None
) -> Path:
    """Write ``{"model": state_dict}`` of a seeded random ``spec`` model to ``path``."""
    torch.manual_seed(seed)
    model = build_sam2(spec, image_size, torch.device("cpu"))
    head = model.sam_mask_decoder.pred_obj_score_head
    last = head.layers[-1] if hasattr(head, "layers") else head
    last.bias.fill_(OBJECT_SCORE_BIAS)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    return path
