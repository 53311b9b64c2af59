"""Saving and restoring the memory bank (crash-resume), safe to load.

The snapshot holds only tensors, ints and lists, so ``torch.load(..., weights_only=True)``
reads it: a snapshot file can never run code.
"""

from __future__ import annotations

import io
from collections import OrderedDict

import torch

from memory.bank import MemoryBank, ObjectMemory
from memory.entries import MemoryEntry

_EMPTY = torch.empty(0)


def _entry_state(entry: MemoryEntry) -> list:
    features = entry.maskmem_features
    return [
        entry.frame_idx,
        _EMPTY if features is None else features.cpu(),
        entry.obj_ptr.cpu(),
        entry.object_score_logits.cpu(),
    ]


def _entry_from_state(state: list, device: torch.device | None) -> MemoryEntry:
    frame_idx, features, obj_ptr, scores = state
    features = None if features.numel() == 0 else features.to(device or "cpu")
    return MemoryEntry(
        int(frame_idx), features, obj_ptr.to(device or "cpu"), scores.to(device or "cpu")
    )


def bank_to_bytes(bank: MemoryBank, frame_idx: int) -> bytes:
    """Serialise ``bank`` as it is before frame ``frame_idx`` is processed."""
    objects = [
        [
            obj_id,
            [_entry_state(e) for e in memory.conditioning.values()],
            [_entry_state(e) for e in memory.recent.values()],
        ]
        for obj_id, memory in bank.objects.items()
    ]
    pos = [t.cpu() for t in bank.maskmem_pos_enc] if bank.maskmem_pos_enc else []
    buffer = io.BytesIO()
    torch.save({"frame_idx": frame_idx, "objects": objects, "pos_enc": pos}, buffer)
    return buffer.getvalue()


def bank_from_bytes(data: bytes, bank: MemoryBank, device: torch.device | None) -> int:
    """Fill the empty ``bank`` from a snapshot; returns the frame to process next."""
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    bank.objects.clear()
    for obj_id, conditioning, recent in state["objects"]:
        memory = ObjectMemory(bank.policy)
        for item in conditioning:
            entry = _entry_from_state(item, bank.storage_device or device)
            memory.conditioning[entry.frame_idx] = entry
        memory.recent = OrderedDict(
            (e.frame_idx, e)
            for e in (_entry_from_state(i, bank.storage_device or device) for i in recent)
        )
        bank.objects[int(obj_id)] = memory
    bank.maskmem_pos_enc = [t.to(device or "cpu") for t in state["pos_enc"]] or None
    return int(state["frame_idx"])
