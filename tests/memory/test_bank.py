"""The memory bank stays the same size however many frames pass."""

from __future__ import annotations

import pytest
import torch

from memory.bank import MemoryBank
from memory.entries import MemoryEntry
from memory.policy import MemoryPolicy

POLICY = MemoryPolicy(num_recent_features=6, num_recent_pointers=15)


def entry(t: int) -> MemoryEntry:
    return MemoryEntry(
        t,
        torch.full((1, 64, 16, 16), float(t)),
        torch.full((1, 256), float(t)),
        torch.ones(1, 1),
    )


def test_bank_size_is_constant_after_the_window_fills():
    bank = MemoryBank(POLICY, storage_dtype=torch.bfloat16)
    bank.store(1, entry(0), conditioning=True)
    sizes = []
    for t in range(1, 200):
        bank.store(1, entry(t), conditioning=False)
        sizes.append(bank.nbytes())
    assert len(set(sizes[20:])) == 1  # constant once 15 frames have passed
    assert sizes[-1] == sizes[20] < 4 * sizes[0]
    memory = bank.objects[1]
    assert list(memory.conditioning) == [0]
    assert list(memory.recent) == list(range(185, 200))
    layout = memory.layout()
    assert layout[1] == tuple(range(194, 200))  # only the last 6 keep spatial features
    assert memory.recent[199].maskmem_features.dtype == torch.bfloat16


def test_prompted_frames_are_kept_and_replace_recent_entries():
    bank = MemoryBank(POLICY)
    bank.store(1, entry(0), conditioning=True)
    for t in range(1, 10):
        bank.store(1, entry(t), conditioning=False)
    bank.store(1, entry(9), conditioning=True)  # a later prompt on frame 9
    memory = bank.objects[1]
    assert list(memory.conditioning) == [0, 9]
    assert 9 not in memory.recent


def test_pos_enc_cached_once_and_objects_removed():
    bank = MemoryBank(POLICY)
    bank.cache_pos_enc([torch.zeros(3, 64, 16, 16)])
    bank.cache_pos_enc([torch.ones(3, 64, 16, 16)])
    assert bank.maskmem_pos_enc[0].shape == (1, 64, 16, 16)
    assert bank.maskmem_pos_enc[0].sum() == 0
    bank.store(4, entry(0), conditioning=True)
    bank.remove(4)
    assert bank.objects == {}


@pytest.mark.parametrize("features, pointers", [(-1, 15), (6, -1)])
def test_policy_rejects_negative_windows(features, pointers):
    with pytest.raises(ValueError):
        MemoryPolicy(features, pointers)
