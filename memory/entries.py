"""What the memory bank stores for one object on one frame."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class MemoryEntry:
    """One object's memory from one processed frame.

    ``maskmem_features``: (1, C_mem, H/16, W/16) spatial memory from SAM 2's memory encoder
    (C_mem = 64), stored in the bank's dtype (bf16 by default, as the official predictor
    does); ``None`` once the frame has left the spatial-memory window.
    ``obj_ptr``: (1, C) float32 object pointer (C = 256).
    ``object_score_logits``: (1, 1) float32, > 0 means the object is judged present.
    """

    frame_idx: int
    maskmem_features: torch.Tensor | None
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor

    def without_features(self) -> MemoryEntry:
        return replace(self, maskmem_features=None)

    def nbytes(self) -> int:
        tensors = [self.obj_ptr, self.object_score_logits]
        if self.maskmem_features is not None:
            tensors.append(self.maskmem_features)
        return sum(t.numel() * t.element_size() for t in tensors)
