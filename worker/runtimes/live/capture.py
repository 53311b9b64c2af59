"""Capture: a thread reads a live source into a newest-frame-only slot.

The slot holds at most one frame. A frame that arrives before the previous one was taken
replaces it and counts as dropped: the consumer always gets the newest frame and nothing ever
queues, so latency stays bounded however slow the consumer is.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from configs.errors import StreamsegError
from worker.runtimes.live.sources import LiveSource


@dataclass(frozen=True, eq=False)
class CapturedFrame:
    """``index``: position in the source's stream; ``captured_at``: ``time.monotonic()``."""

    index: int
    rgb: np.ndarray
    captured_at: float


@dataclass(frozen=True)
class SourceEnd:
    """Why a source stopped: it ended (``failed`` False) or failed, stalled, was not there."""

    message: str
    failed: bool


class FrameSlot:
    """Newest-frame-only hand-over between one producer and one consumer thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: CapturedFrame | None = None
        self._closed = False
        self.captured = 0
        self.dropped = 0

    def put(self, frame: CapturedFrame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.captured += 1
            self._cond.notify()

    def take(self, timeout: float) -> CapturedFrame | None:
        """The newest frame not taken yet; None after ``timeout`` s or once closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Capture:
    """Reads ``source`` on a daemon thread into a :class:`FrameSlot`; a context manager.

    The thread owns the source and closes it when it stops. ``end`` tells why it stopped;
    ``stalled(seconds)`` tells whether it has gone that long without a frame.
    """

    def __init__(self, source: LiveSource) -> None:
        self.source = source
        self.slot = FrameSlot()
        self.end: SourceEnd | None = None
        self.last_frame_at = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-capture", daemon=True)

    def start(self) -> Capture:
        self.last_frame_at = time.monotonic()
        self._thread.start()
        return self

    def take(self, timeout: float) -> CapturedFrame | None:
        return self.slot.take(timeout)

    def stalled(self, seconds: float) -> SourceEnd | None:
        """A failure when no frame came for ``seconds`` while the source is still open."""
        silent = time.monotonic() - self.last_frame_at
        if self.end is None and silent > seconds:
            return SourceEnd(
                f"{self.source.info.source} stalled: no frame for {silent:.1f} s", True
            )
        return None

    def _run(self) -> None:
        count = 0
        try:
            for count, rgb in enumerate(self.source.frames(), start=1):
                if self._stop.is_set():
                    return
                self.last_frame_at = time.monotonic()
                self.slot.put(CapturedFrame(count - 1, rgb, self.last_frame_at))
            self.end = SourceEnd(f"{self.source.info.source} ended after {count} frames", False)
        except StreamsegError as error:
            self.end = SourceEnd(str(error), True)
        except Exception as error:  # a source may fail in any way; say so, never hang
            self.end = SourceEnd(f"{self.source.info.source} failed: {error!r}", True)
        finally:
            self.source.close()
            self.slot.close()

    def close(self, timeout: float = 0.5) -> None:
        """Stop reading; waits up to ``timeout`` s (a read blocked in a driver is left)."""
        self._stop.set()
        self.slot.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
