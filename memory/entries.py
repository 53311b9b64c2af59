"""What the memory bank stores for one object on one frame.

:class:`BankEntry` is all ``memory.bank`` relies on, so each engine brings its own entry type
(SAM 2's :class:`MemoryEntry` here, lite's ``memory.lite_entries.LiteMemoryEntry``) and the
bank's windows, storage conversion and snapshots serve both unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch


class BankEntry(Protocol):
    """One object's memory from one frame, as the bank handles it."""

    frame_idx: int

    @property
    def maskmem_features(self) -> Any | None:
        """The spatial memory (None once the frame has left the feature window)."""

    def without_features(self) -> BankEntry:
        """The entry once it has left the feature window (pointers may stay)."""

    def to_storage(self, dtype: torch.dtype, device: torch.device | None) -> BankEntry:
        """The entry as the bank keeps it: ``dtype``/``device`` where the engine stores
        features in the bank's storage form (``device`` None: where it is)."""

    def nbytes(self) -> int:
        """Bytes held by the entry's tensors."""


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

    def to_storage(self, dtype: torch.dtype, device: torch.device | None) -> MemoryEntry:
        """Spatial features in the bank's dtype (bf16 by default, as the official predictor
        stores them), moved to ``device`` when the bank offloads; pointers stay float32."""
        features = self.maskmem_features
        if features is None:
            return self
        features = features.to(dtype)
        if device is not None:
            features = features.to(device, non_blocking=True)
        return replace(self, maskmem_features=features)

    def nbytes(self) -> int:
        tensors = [self.obj_ptr, self.object_score_logits]
        if self.maskmem_features is not None:
            tensors.append(self.maskmem_features)
        return sum(t.numel() * t.element_size() for t in tensors)
