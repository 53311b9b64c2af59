"""A tracker restored from a snapshot continues exactly as if never interrupted."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from PIL import Image

from configs.errors import InputError
from jobs.prompts import Prompt
from memory.bank import MemoryBank
from memory.policy import MemoryPolicy
from memory.snapshot import load_objects, read_snapshot, snapshot_bytes
from worker.engines.sam2video.tracker import StreamingTracker


def test_restore_continues_bit_exactly(loaded_model, davis_root):
    paths = sorted((davis_root / "JPEGImages" / "car-turn").glob("*.jpg"))[:9]
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    prompts = [
        Prompt(1, 0, points=((500.0, 250.0),), labels=(1,)),
        Prompt(2, 2, box=(50.0, 50.0, 300.0, 300.0)),
    ]
    straight = StreamingTracker(loaded_model)
    first = StreamingTracker(loaded_model)
    for p in prompts:
        straight.add_prompt(p)
        first.add_prompt(p)
    expected = [straight.step(rgb) for rgb in frames]
    for rgb in frames[:5]:
        first.step(rgb)
    data = first.snapshot()
    resumed = StreamingTracker(loaded_model)
    resumed.restore(data)
    assert resumed.frame_idx == 5
    for t in range(5, 9):
        got = resumed.step(frames[t])
        assert set(got.objects) == {1, 2}
        for obj_id, ref in expected[t].objects.items():
            assert torch.equal(got.objects[obj_id].low_res_logits, ref.low_res_logits)
    # the snapshot is loadable without unpickling code
    assert b"frame_idx" in data


def _saved(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class _TagEntry:
    """A minimal entry of another engine: a feature tensor and a label."""

    frame_idx: int
    maskmem_features: torch.Tensor | None
    label: str

    def without_features(self) -> _TagEntry:
        return replace(self, maskmem_features=None)

    def to_storage(self, dtype: torch.dtype, device: torch.device | None) -> _TagEntry:
        return self  # this engine keeps its own dtype

    def nbytes(self) -> int:
        return 0 if self.maskmem_features is None else self.maskmem_features.numel() * 4


class _TagCodec:
    def to_state(self, entry: _TagEntry) -> list:
        features = torch.empty(0) if entry.maskmem_features is None else entry.maskmem_features
        return [entry.frame_idx, features, entry.label]

    def from_state(self, state: list) -> _TagEntry:
        frame_idx, features, label = state
        return _TagEntry(int(frame_idx), None if features.numel() == 0 else features, label)


def test_one_format_serves_any_entry_type() -> None:
    """The bank's windows, storage and snapshot format are the same for another engine's
    entries: what it stored comes back, entry for entry, with its engine's extra values."""
    bank = MemoryBank(MemoryPolicy(num_recent_features=2, num_recent_pointers=3))
    bank.store(4, _TagEntry(0, torch.full((2, 3), 0.5), "prompt"), conditioning=True)
    for t in range(1, 6):
        bank.store(4, _TagEntry(t, torch.full((2, 3), float(t)), f"frame {t}"), conditioning=False)
    data = snapshot_bytes(bank, 6, _TagCodec(), {"settings": "radius=9"})
    restored = MemoryBank(bank.policy)
    snapshot = read_snapshot(data)
    load_objects(restored, snapshot.objects, _TagCodec())
    assert snapshot.frame_idx == 6 and snapshot.extra == {"settings": "radius=9"}
    before, after = bank.objects[4], restored.objects[4]
    assert after.layout() == before.layout() == ((0,), (4, 5), (3, 4, 5))
    for ours, theirs in zip(
        [*after.conditioning.values(), *after.recent.values()],
        [*before.conditioning.values(), *before.recent.values()],
        strict=True,
    ):
        assert ours.label == theirs.label and ours.frame_idx == theirs.frame_idx
        assert (ours.maskmem_features is None) == (theirs.maskmem_features is None)
        if ours.maskmem_features is not None:
            assert torch.equal(ours.maskmem_features, theirs.maskmem_features)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a snapshot", "cannot read the memory snapshot"),
        (_saved({"frame_idx": 3, "objects": []}), "not a streamseg memory snapshot"),
        (_saved([1, 2, 3]), "not a streamseg memory snapshot"),
    ],
)
def test_a_foreign_snapshot_is_one_input_error(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_snapshot(data)
