"""The streaming memory bank: per-object memory whose size does not grow with the video.

Per object it keeps every prompted (conditioning) frame permanently, the spatial memory
features of the last ``num_recent_features`` frames and the object pointers of the last
``num_recent_pointers`` frames. The memory positional encoding, identical for all frames
and objects, is cached once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from memory.entries import BankEntry
from memory.policy import MemoryPolicy


@dataclass
class ObjectMemory:
    """One object's memory: conditioning frames (kept) and a bounded window of recent ones."""

    policy: MemoryPolicy
    conditioning: dict[int, BankEntry] = field(default_factory=dict)
    recent: OrderedDict[int, BankEntry] = field(default_factory=OrderedDict)

    @property
    def is_empty(self) -> bool:
        return not self.conditioning

    def add_conditioning(self, entry: BankEntry) -> None:
        """A prompted frame: kept for the life of the object."""
        self.recent.pop(entry.frame_idx, None)
        self.conditioning[entry.frame_idx] = entry
        self.conditioning = dict(sorted(self.conditioning.items()))

    def add_recent(self, entry: BankEntry) -> None:
        """A tracked frame: enters the recent window, older frames are evicted."""
        self.recent[entry.frame_idx] = entry
        self.evict_before(entry.frame_idx + 1)

    def evict_before(self, next_frame_idx: int) -> None:
        """Drop what frame ``next_frame_idx`` and later can no longer read."""
        feature_limit = next_frame_idx - self.policy.num_recent_features
        pointer_limit = next_frame_idx - self.policy.num_recent_pointers
        for frame_idx in list(self.recent):
            if frame_idx < feature_limit and frame_idx < pointer_limit:
                del self.recent[frame_idx]
            elif frame_idx < feature_limit:
                self.recent[frame_idx] = self.recent[frame_idx].without_features()

    def layout(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Which frames this object's memory holds: (conditioning, with features, pointers)."""
        with_features = tuple(t for t, e in self.recent.items() if e.maskmem_features is not None)
        return tuple(self.conditioning), with_features, tuple(self.recent)

    def nbytes(self) -> int:
        entries = list(self.conditioning.values()) + list(self.recent.values())
        return sum(entry.nbytes() for entry in entries)


@dataclass
class MemoryBank:
    """All objects' memory plus the cached memory positional encoding.

    ``maskmem_pos_enc``: list of (1, C_mem, H/16, W/16) float tensors, same for every frame.
    ``storage_dtype``/``storage_device``: where spatial memory features live (bf16 on the
    compute device by default; ``cpu`` to offload).
    """

    policy: MemoryPolicy
    storage_dtype: torch.dtype = torch.bfloat16
    storage_device: torch.device | None = None
    objects: dict[int, ObjectMemory] = field(default_factory=dict)
    maskmem_pos_enc: list[torch.Tensor] | None = None

    def object(self, obj_id: int) -> ObjectMemory:
        if obj_id not in self.objects:
            self.objects[obj_id] = ObjectMemory(self.policy)
        return self.objects[obj_id]

    def remove(self, obj_id: int) -> None:
        self.objects.pop(obj_id, None)

    def store(self, obj_id: int, entry: BankEntry, conditioning: bool) -> None:
        """Add one object's memory for one frame, in the entry type's storage form."""
        entry = entry.to_storage(self.storage_dtype, self.storage_device)
        memory = self.object(obj_id)
        if conditioning:
            memory.add_conditioning(entry)
        else:
            memory.add_recent(entry)

    def cache_pos_enc(self, maskmem_pos_enc: list[torch.Tensor]) -> None:
        """Keep one (batch-1) copy of the memory positional encoding."""
        if self.maskmem_pos_enc is None:
            self.maskmem_pos_enc = [x[0:1].clone() for x in maskmem_pos_enc]

    def nbytes(self) -> int:
        pos = sum(t.numel() * t.element_size() for t in self.maskmem_pos_enc or [])
        return pos + sum(memory.nbytes() for memory in self.objects.values())
