"""What the memory bank stores for one object on one frame with the ``lite`` encoder.

``LiteMemoryEntry`` meets ``memory.entries.BankEntry``, as SAM 2's ``MemoryEntry`` does, so both
engines share ``memory.bank`` (windows, ``store``) and ``memory.snapshot``'s format unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True, eq=False)
class FrameKeys:
    """One frame's attention keys, shared by every object that remembers the frame.

    ``raw``: (C, h, w) float16 unit-length features on the stride-8 grid (what a saved state
    holds); ``patches``: (L, C + 1, S), the key patch each of the L query tiles reads
    (S = (tile + 2 radius)^2; zero outside the frame, where the extra last channel holds the
    readout's out-of-frame score, 0 inside); ``coarse``: (C, n16) unit keys on the
    stride-16 grid; both in the readout's score dtype (float32, or bfloat16 where the CPU
    multiplies it natively). ``patches`` and ``coarse`` are rebuilt from ``raw`` on loading.
    """

    raw: torch.Tensor
    patches: torch.Tensor
    coarse: torch.Tensor

    def nbytes(self) -> int:
        tensors = (self.raw, self.patches, self.coarse)
        return sum(t.numel() * t.element_size() for t in tensors)


@dataclass(frozen=True)
class LiteMemoryEntry:
    """One object's memory from one processed frame (``lite`` encoder).

    ``keys``: the frame's ``FrameKeys`` (the same object for every object on that frame);
    ``soft_mask``: (h, w) float32 probability of the object on the stride-8 grid;
    ``score``: float, > 0 when the object was judged present. Keys and soft mask are
    ``None`` once the frame has left the window.
    """

    frame_idx: int
    keys: FrameKeys | None
    soft_mask: torch.Tensor | None
    score: float

    @property
    def maskmem_features(self) -> FrameKeys | None:
        return self.keys

    def without_features(self) -> LiteMemoryEntry:
        return replace(self, keys=None, soft_mask=None)

    def to_storage(self, dtype: torch.dtype, device: torch.device | None) -> LiteMemoryEntry:
        """As it is: keys are shared float16 ``raw`` plus the patches the readout needs,
        and lite runs on the CPU only."""
        return self

    def nbytes(self) -> int:
        """Bytes of the soft mask and of the (possibly shared) keys."""
        keys = self.keys.nbytes() if self.keys is not None else 0
        mask = self.soft_mask.numel() * 4 if self.soft_mask is not None else 0
        return keys + mask


def unique_nbytes(entries: list[LiteMemoryEntry]) -> int:
    """Bytes held by ``entries``, counting keys shared between objects once."""
    seen: dict[int, int] = {}
    total = 0
    for entry in entries:
        if entry.soft_mask is not None:
            total += entry.soft_mask.numel() * entry.soft_mask.element_size()
        if entry.keys is not None:
            seen[id(entry.keys)] = entry.keys.nbytes()
    return total + sum(seen.values())
