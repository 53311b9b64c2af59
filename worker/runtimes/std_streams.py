"""The standard streams of a command, made safe to run with: closed, full or gone.

A command is often started where nobody reads its diagnostics: a daemon with stderr
closed (``2>&-``), a log volume that is full, a pipe whose reader died. Progress bars and
messages are for a person watching; a stream that cannot take them must not stop the work.

* :func:`reserve_standard_fds`: descriptors 0, 1 and 2, if closed, are opened on /dev/null.
  Otherwise the next file the process opens would get one of them, and whatever writes to
  "stderr" at the C level (FFmpeg's log, OpenMP's and torch's warnings) would write into it:
  into ``tracks.json`` or the overlay.
* :class:`QuietOnFailure` stands in for ``sys.stderr`` while a command runs: writes go to
  the real stream until one fails; from then on they are dropped, and a real descriptor
  behind it is pointed at /dev/null so that the interpreter's flush at exit does not fail
  again (that would turn the exit status into 120).
* :class:`RaisingOnFailure` stands in for ``sys.stdout``, which carries results: a failed
  write is raised as :class:`OutputFailed`, told apart from every other OSError.
"""

from __future__ import annotations

import io
import os
from typing import TextIO

STANDARD_FDS = (0, 1, 2)


def reserve_standard_fds() -> None:
    """Open /dev/null on each of descriptors 0, 1, 2 that is closed."""
    for fd in STANDARD_FDS:
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: ``fd``


def discard_fd(fd: int) -> None:
    """Point ``fd`` at /dev/null (what is still buffered for it then goes nowhere)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class OutputFailed(Exception):
    """Writing stdout failed (``error``: the OSError; a ``BrokenPipeError`` when its reader
    is gone)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _StandIn(io.TextIOBase):
    """A text stream in place of a standard one, ``stream`` (None: gone)."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__()
        self.stream = stream

    def isatty(self) -> bool:
        stream = self.stream  # once: another thread may drop it in between
        try:
            return stream is not None and stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        stream = self.stream
        if stream is None:
            raise io.UnsupportedOperation("the stream is gone")
        return stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"


class RaisingOnFailure(_StandIn):
    """Stands in for ``sys.stdout``: writes and flushes go to ``stream``; a failure is raised
    as :class:`OutputFailed`, so that the command can tell it from any other OSError."""

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as error:
            raise OutputFailed(error) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as error:
            raise OutputFailed(error) from None


class QuietOnFailure(_StandIn):
    """A text stream writing to ``stream`` (None: nowhere) until a write or flush fails."""

    def write(self, text: str) -> int:
        stream = self.stream  # once: another thread may give up in between
        if stream is not None:
            try:
                stream.write(text)
            except (OSError, ValueError):  # ValueError: a closed file object
                self._give_up(stream)
        return len(text)

    def flush(self) -> None:
        stream = self.stream
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                self._give_up(stream)

    def _give_up(self, stream: TextIO) -> None:
        self.stream = None
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):
            return  # not a descriptor (a test's capture): nothing is flushed at exit
        discard_fd(fd)
