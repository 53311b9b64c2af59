"""Reading a file a user named, defensively: every failure is one :class:`InputError` line.

The readers of user files (``tracks.json``, prompt files) open them here, so a missing file, a
folder, a FIFO or ``/dev/zero``, an endless or oversized file, or bytes that are not text get
the same kind of answer and never a traceback or a hang. ``what`` names the file in messages
(``"prompts file"``, ``"tracks.json"``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from configs.errors import InputError


def read_bytes(
    path: Path, what: str, *, max_bytes: int | None = None, regular_only: bool = False
) -> bytes:
    """The whole content of ``path``.

    ``max_bytes``: at most this many are read (an endless file is refused, not swallowed);
    ``regular_only``: anything but a regular file (a FIFO, a device) is refused before reading.
    """
    try:
        with open(path, "rb") as handle:
            if regular_only and not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise InputError(f"{what} {path} is not a regular file")
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"no such {what}: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a folder") from None
    except OSError as error:
        raise InputError(f"cannot read {what} {path}: {one_line(error)}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(f"{what} {path} is larger than {max_bytes >> 20} MiB")
    return data


def read_text(
    path: Path,
    what: str,
    *,
    max_bytes: int | None = None,
    regular_only: bool = False,
    encoding: str = "utf-8",
) -> str:
    """:func:`read_bytes`, decoded (``encoding`` ``utf-8-sig`` allows a byte-order mark)."""
    data = read_bytes(path, what, max_bytes=max_bytes, regular_only=regular_only)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {error.start})") from None


def one_line(error: object) -> str:
    """An error's text with its white space (newlines too) folded to single spaces."""
    return " ".join(str(error).split())
