"""The memory bank seen through SAM 2's eyes.

``SAM2Base.track_step`` reads past frames from an ``output_dict`` of plain dicts. This module
builds that view, for a batch of objects whose memory holds the same frames, from the typed
bank, at the call boundary only. A recent frame whose spatial memory was evicted (kept for its
object pointer) is given zero memory tokens, so SAM 2 attends only to what the bank holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from memory.bank import ObjectMemory
from memory.entries import MemoryEntry


def sam2_output_dict(
    memories: Sequence[ObjectMemory],
    maskmem_pos_enc: list[torch.Tensor] | None,
    device: torch.device,
) -> dict[str, dict[int, dict[str, object]]]:
    """``{"cond_frame_outputs": {t: out}, "non_cond_frame_outputs": {t: out}}`` for a batch.

    All ``memories`` must share one layout (same frames); tensors are stacked on the batch
    dimension in the given order.
    """
    first = memories[0]
    if any(memory.layout() != first.layout() for memory in memories[1:]):
        raise ValueError("objects batched together must hold the same memory frames")
    cond = {
        t: _stacked([m.conditioning[t] for m in memories], maskmem_pos_enc, device)
        for t in first.conditioning
    }
    non_cond = {
        t: _stacked([m.recent[t] for m in memories], maskmem_pos_enc, device) for t in first.recent
    }
    return {"cond_frame_outputs": cond, "non_cond_frame_outputs": non_cond}


def _stacked(
    entries: Sequence[MemoryEntry], pos_enc: list[torch.Tensor] | None, device: torch.device
) -> dict[str, object]:
    batch = len(entries)
    if entries[0].maskmem_features is None or pos_enc is None:
        channels = pos_enc[-1].shape[1] if pos_enc else 64
        features = torch.empty(batch, channels, 0, 0, device=device)
        pos = [torch.empty(batch, channels, 0, 0, device=device)]
    else:
        features = torch.cat([e.maskmem_features for e in entries]).to(device, non_blocking=True)
        pos = [p.to(device).expand(batch, -1, -1, -1) for p in pos_enc]
    return {
        "maskmem_features": features,
        "maskmem_pos_enc": pos,
        "obj_ptr": torch.cat([e.obj_ptr for e in entries]).to(device),
        "object_score_logits": torch.cat([e.object_score_logits for e in entries]).to(device),
    }
