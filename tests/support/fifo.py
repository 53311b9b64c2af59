"""A FIFO's writer in a thread, for tests that pipe a video into streamseg."""

from __future__ import annotations

import fcntl
import os
import termios
import threading
from pathlib import Path


class FifoWriter:
    """Writes ``data[:upto]`` into ``fifo`` from a thread (opening it waits for the reader),
    then closes it; with ``upto`` short of the end it keeps the pipe open until
    ``release()`` (a writer that stalls). ``written`` is set once the bytes are in."""

    def __init__(self, fifo: Path, data: bytes, upto: int | None = None) -> None:
        upto = len(data) if upto is None else upto
        self.written, self._released = threading.Event(), threading.Event()
        if upto >= len(data):
            self._released.set()
        self.fd: int | None = None
        self._thread = threading.Thread(target=self._run, args=(fifo, data[:upto]), daemon=True)
        self._thread.start()

    def _run(self, fifo: Path, chunk: bytes) -> None:
        self.fd = os.open(fifo, os.O_WRONLY)
        try:
            view = memoryview(chunk)
            while view:
                view = view[os.write(self.fd, view) :]
            self.written.set()
            self._released.wait(600)
        except BrokenPipeError:  # the reader has gone
            pass
        finally:
            os.close(self.fd)

    @property
    def holding(self) -> bool:
        """Whether the writer still holds the pipe open without sending (not released)."""
        return not self._released.is_set()

    def unread(self) -> int:
        """Bytes in the pipe that the reader has not taken yet (once ``written``)."""
        return int.from_bytes(fcntl.ioctl(self.fd, termios.FIONREAD, b"\0" * 4), "little")

    def release(self) -> None:
        """Let a stalled writer close the pipe, and wait for the thread."""
        self._released.set()
        self._thread.join(timeout=60)
