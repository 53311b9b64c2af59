"""Process tuning: glibc keeps freed blocks unless the user set their own allocator options."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from worker.process_tuning import keep_freed_memory

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc")

# A 64 MiB block allocated and freed in a loop: with glibc's defaults each one is a fresh
# mmap (page faults counted by the kernel every time); kept, later ones reuse the pages.
FAULTS = """
import resource, sys
from worker.process_tuning import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
import ctypes
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 64 << 20
def touch():
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


@glibc_only
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    pages = 5 * (64 << 20) // 4096
    assert _faults("default") > pages // 2  # each block faulted in again
    assert _faults("keep") < pages // 20  # the same pages reused


@glibc_only
@pytest.mark.parametrize("variable", ["MALLOC_ARENA_MAX", "GLIBC_TUNABLES"])
def test_users_own_allocator_settings_win(monkeypatch, variable):
    monkeypatch.setenv(variable, "2")
    assert keep_freed_memory() is False
