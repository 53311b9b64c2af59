"""Local files written in one step, with the mode a plain ``open()`` would give them.

``tempfile.mkstemp`` and ``NamedTemporaryFile`` create files ``0600`` whatever the umask, so a
result written through them and renamed into place cannot be read by a teammate or another
service account on shared storage. :func:`atomic_writer` writes a temporary sibling, sets it
to :func:`plain_file_mode` (``0666 & ~umask``, as ``open()`` creates files), fsyncs it and
renames it over the target: readers see the old file or the new one, never a part.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_PROC_STATUS = "/proc/self/status"


def current_umask() -> int:
    """The process umask, read without changing it where the kernel shows it (Linux >= 4.7).

    Elsewhere it is read by setting and restoring it, which a file created by another thread
    in that instant could see.
    """
    try:
        with open(_PROC_STATUS, encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def plain_file_mode() -> int:
    """The permission bits ``open(path, "w")`` gives a new file: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


@contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; on a clean exit it replaces ``path``.

    The file gets :func:`plain_file_mode` and is fsynced before the rename. If the block
    raises, the temporary file is removed and ``path`` is left as it was.

    Args:
        path: the file to write (its folder must exist).
        mode: ``"wb"`` (bytes) or ``"w"`` (UTF-8 text).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer mode must be 'wb' or 'w', not {mode!r}")
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    handle = os.fdopen(descriptor, mode, encoding=None if mode == "wb" else "utf-8")
    try:
        with handle:
            os.fchmod(handle.fileno(), plain_file_mode())
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
