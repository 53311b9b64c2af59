"""Saving and restoring a memory bank (crash-resume, live rewinds), safe to load.

One format for every engine: ``{"format", "frame_idx", "objects", "extra"}``, where
``objects`` is ``[[obj_id, [conditioning entries], [recent entries]], ...]``, each entry as its
engine's :class:`EntryCodec` writes it (tensors, ints, floats and lists), and ``extra`` holds
what else the engine needs (SAM 2: the memory positional encoding; lite: its settings and
shared frame keys). A snapshot holds only tensors, numbers, strings, lists and dicts, so
``torch.load(..., weights_only=True)`` reads it: a snapshot can never run code.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from configs.errors import InputError
from memory.bank import MemoryBank, ObjectMemory
from memory.entries import BankEntry, MemoryEntry

SNAPSHOT_FORMAT = "streamseg-memory-1"
_EMPTY = torch.empty(0)


class EntryCodec(Protocol):
    """How one engine's entries become snapshot values and back."""

    def to_state(self, entry: BankEntry) -> list: ...

    def from_state(self, state: list) -> BankEntry: ...


@dataclass(frozen=True)
class Snapshot:
    """A read snapshot: the frame to process next, the bank's objects (still encoded) and the
    engine's ``extra`` values."""

    frame_idx: int
    objects: list
    extra: dict[str, Any]


def snapshot_bytes(
    bank: MemoryBank, frame_idx: int, codec: EntryCodec, extra: dict[str, Any]
) -> bytes:
    """Serialise ``bank`` as it is before frame ``frame_idx`` is processed."""
    objects = [
        [
            obj_id,
            [codec.to_state(e) for e in memory.conditioning.values()],
            [codec.to_state(e) for e in memory.recent.values()],
        ]
        for obj_id, memory in bank.objects.items()
    ]
    state = {"format": SNAPSHOT_FORMAT, "frame_idx": frame_idx, "objects": objects}
    buffer = io.BytesIO()
    torch.save({**state, "extra": extra}, buffer)
    return buffer.getvalue()


def read_snapshot(data: bytes) -> Snapshot:
    """Parse ``snapshot_bytes`` output; anything else is one ``InputError`` line."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable snapshot is one input error
        raise InputError(f"cannot read the memory snapshot: {error}") from None
    if not isinstance(state, dict) or state.get("format") != SNAPSHOT_FORMAT:
        raise InputError("not a streamseg memory snapshot")
    return Snapshot(int(state["frame_idx"]), list(state["objects"]), dict(state["extra"]))


def load_objects(bank: MemoryBank, objects: list, codec: EntryCodec) -> None:
    """Replace ``bank``'s objects by a snapshot's (entries are already in storage form)."""
    bank.objects.clear()
    for obj_id, conditioning, recent in objects:
        memory = ObjectMemory(bank.policy)
        for item in conditioning:
            entry = codec.from_state(item)
            memory.conditioning[entry.frame_idx] = entry
        memory.recent = OrderedDict((e.frame_idx, e) for e in map(codec.from_state, recent))
        bank.objects[int(obj_id)] = memory


@dataclass(frozen=True)
class Sam2EntryCodec:
    """SAM 2's :class:`MemoryEntry`: features, pointer and score, restored onto ``device``."""

    device: torch.device | None = None

    def to_state(self, entry: MemoryEntry) -> list:
        features = entry.maskmem_features
        return [
            entry.frame_idx,
            _EMPTY if features is None else features.cpu(),
            entry.obj_ptr.cpu(),
            entry.object_score_logits.cpu(),
        ]

    def from_state(self, state: list) -> MemoryEntry:
        frame_idx, features, obj_ptr, scores = state
        device = self.device or "cpu"
        features = None if features.numel() == 0 else features.to(device)
        return MemoryEntry(int(frame_idx), features, obj_ptr.to(device), scores.to(device))


def bank_to_bytes(bank: MemoryBank, frame_idx: int) -> bytes:
    """A SAM 2 bank (with its cached memory positional encoding) before ``frame_idx``."""
    pos = [t.cpu() for t in bank.maskmem_pos_enc] if bank.maskmem_pos_enc else []
    return snapshot_bytes(bank, frame_idx, Sam2EntryCodec(), {"pos_enc": pos})


def bank_from_bytes(data: bytes, bank: MemoryBank, device: torch.device | None) -> int:
    """Fill ``bank`` from :func:`bank_to_bytes` output; returns the frame to process next."""
    snapshot = read_snapshot(data)
    load_objects(bank, snapshot.objects, Sam2EntryCodec(bank.storage_device or device))
    bank.maskmem_pos_enc = [t.to(device or "cpu") for t in snapshot.extra["pos_enc"]] or None
    return snapshot.frame_idx
