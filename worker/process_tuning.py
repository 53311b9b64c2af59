"""Process-wide settings for CPU inference, applied by the CLI at start, before torch loads.

- OpenMP threads sleep when idle (``OMP_WAIT_POLICY=PASSIVE``): busy-waiting makes
  multi-threaded CPU inference ~10x slower on shared cores.
- glibc's allocator keeps large freed blocks (``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``):
  by default every block over a few MiB is a fresh ``mmap`` returned to the kernel on
  ``free``, so each frame's activations (tens of MiB) page-fault in again, frame after frame.
  Kept, the same memory is reused: the bf16 step at 512 px went from 3.8-4.2 s to 3.4 s for
  12 frames (``BENCHMARKS.md``, issue 11). Peak memory is unchanged, but freed memory is not
  handed back to the system until the process ends (``memory`` benchmark: still flat in video
  length). A user's own ``MALLOC_*`` or ``GLIBC_TUNABLES`` settings win: nothing is changed
  then, and nothing is done where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
KEPT_BLOCK_BYTES = 1 << 30  # blocks up to this size come from the heap and are reused


def tune_process() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    keep_freed_memory()


def keep_freed_memory() -> bool:
    """Tell glibc to serve blocks up to ``KEPT_BLOCK_BYTES`` from the heap and not trim it;
    whether it was done."""
    if any(name.startswith("MALLOC_") or name == "GLIBC_TUNABLES" for name in os.environ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, KEPT_BLOCK_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2 * KEPT_BLOCK_BYTES - 1)
    )
