"""Reading a FIFO, socket or character device for PyAV so that a stalled read can be left.

FFmpeg reads such a file with a plain ``read()`` that blocks until the writer sends more,
and retries it when a signal interrupts it: a writer that stalls with the pipe open blocks
the reading thread for as long as it likes. A stop (SIGTERM, Ctrl-C) then cannot finish,
because the pipeline's decode thread must end before the container is closed. Such sources
are instead handed to PyAV as a Python file object, :class:`PipeReader`, whose ``read`` waits
in ``select`` a tenth of a second at a time:

- ``interrupt()`` (from any thread) makes the waiting read, and every later one, return
  the end of the stream at once, so the decode thread ends within 0.1 s;
- a stop signal's handler runs in the main thread while it waits there (``select`` returns
  on the signal); what it raises (``KeyboardInterrupt`` or a subclass, which PyAV's read
  callback would not pass on) is kept, the read ends the stream, and
  :func:`stops_passed_through` raises it again once the PyAV call returns.

Regular files and URLs are left to FFmpeg: a disk read does not stall, and network reads have
their own timeout.
"""

from __future__ import annotations

import ctypes
import os
import select
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_POLL_S = 0.1  # how often a waiting read checks whether it was interrupted


def is_pipe_like(path: str) -> bool:
    """Whether ``path`` is a FIFO, a socket or a character device (``/dev/stdin`` as a pipe)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


class PipeReader:
    """A read-only, non-seekable file object over ``path`` (see the module docstring).

    Opening blocks until a writer connects, as FFmpeg's own open would, and a signal to the
    main thread ends that wait (see :func:`_open_interruptibly`). ``stop``: the interruption
    a stop signal's handler raised inside a read, for :func:`stops_passed_through` to raise
    again.
    """

    def __init__(self, path: str) -> None:
        self._fd = _open_interruptibly(path)
        self._interrupted = threading.Event()
        self.stop: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes, waiting for the writer as long as it takes; ``b""`` at the
        end of the stream, and at once (and from then on) once interrupted. An early end is
        not an error to PyAV, which would swallow an exception raised here."""
        try:
            while not self._interrupted.is_set():
                readable, _, _ = select.select([self._fd], [], [], _POLL_S)
                if readable:
                    return os.read(self._fd, size if size > 0 else 1 << 16)
        except KeyboardInterrupt as stop:  # a stop signal's handler raised while waiting
            self.stop = stop
            self._interrupted.set()
        return b""

    def interrupt(self) -> None:
        """Make the waiting read and every later one end at once (thread-safe)."""
        self._interrupted.set()

    def close(self) -> None:
        """Close the pipe; safe to call twice."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def _open_interruptibly(path: str) -> int:
    """``open(path, O_RDONLY)``, which for a FIFO waits for a writer, without Python's retry
    on EINTR (PEP 475): a signal whose handler only takes note (RQ's warm shutdown) still
    ends the wait, with ``InterruptedError``, as FFmpeg's own open did; a handler that raises
    raises as soon as the call returns."""
    fd = _LIBC.open(os.fsencode(path), os.O_RDONLY | os.O_CLOEXEC)
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)  # EINTR: an InterruptedError
    return fd


_LIBC = ctypes.CDLL(None, use_errno=True)  # the C library's open(): releases the GIL


@contextmanager
def stops_passed_through(pipe: PipeReader | None) -> Iterator[None]:
    """Around a PyAV call that reads ``pipe``: a stop signal that ended a read early is
    raised after the call, in place of whatever the call made of the early end."""
    try:
        yield
    finally:
        if pipe is not None and pipe.stop is not None:
            raise pipe.stop from None
