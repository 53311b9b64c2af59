"""A local live session: newest captured frame -> tracker -> overlay for the page, in a loop.

The loop takes the newest frame from the capture slot (older ones were dropped there), applies
the page's pending prompts, runs the tracker, renders the overlay and publishes it. Latency is
measured per processed frame from capture to rendered overlay. The session ends when the source
ends, fails or stalls, when tracking fails, or when it is closed; ``state()`` says which.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from configs.errors import StreamsegError
from worker.engines.contract import RewindableTracker
from worker.runtimes.live.capture import Capture, FrameSlot, SourceEnd
from worker.runtimes.live.controls import Controls
from worker.runtimes.live.display import Display, ObjectView
from worker.runtimes.live.recorder import Recorder
from worker.runtimes.live.sources import public_label
from worker.runtimes.live.stats import LiveStats, StatsSnapshot
from worker.runtimes.live.tracking import LiveTracking

DEFAULT_STALL_TIMEOUT_S = 5.0
_POLL_S = 0.1


class Status(str, Enum):
    RUNNING = "running"
    ENDED = "ended"  # the source ended normally (a file played to its end)
    FAILED = "failed"  # the source failed or stalled, or tracking failed
    STOPPED = "stopped"  # closed by the user


@dataclass(frozen=True)
class SessionState:
    """Everything the page shows besides the picture."""

    status: Status
    message: str
    source: str
    width: int
    height: int
    stats: StatsSnapshot
    objects: tuple[ObjectView, ...]
    frame: int | None  # capture index of the newest rendered frame
    saved: tuple[str, ...] = ()
    notice: str | None = None  # the last prompt the tracker rejected, and why
    rejected: int | None = None  # the object whose prompt was rejected
    busy: bool = False  # prompts queued or being applied

    def to_json(self) -> dict:
        """What the page gets: no server paths (the source's and saved files' base names)."""
        label = public_label(self.source)
        return {
            "status": self.status.value,
            "message": self.message.replace(self.source, label),
            "source": label,
            "width": self.width,
            "height": self.height,
            "stats": self.stats.to_json(),
            "objects": [o.to_json() for o in self.objects],
            "frame": self.frame,
            "saved": [Path(p).name for p in self.saved],
            "notice": self.notice,
            "rejected": self.rejected,
            "busy": self.busy,
        }


def status_for(end: SourceEnd | None) -> Status:
    if end is None:
        return Status.STOPPED
    return Status.FAILED if end.failed else Status.ENDED


class PageSession:
    """What the page server drives, whether the tracker runs here (:class:`LiveSession`) or on
    a queue worker (``remote_capture.RemoteCaptureSession``): ``shown``, ``state``, ``wait``,
    ``close``; a context manager (``start`` on enter, ``close`` on exit).

    Subclasses set ``capture``, ``display``, ``stats``, ``recorder``, ``saved``, ``_status``,
    ``_message`` and ``_done``, and implement ``start`` and ``close``.
    """

    capture: Capture
    display: Display
    stats: LiveStats
    recorder: Recorder | None
    saved: list[Path]
    _status: Status
    _message: str
    _done: threading.Event

    def start(self) -> PageSession:
        raise NotImplementedError

    def close(self, timeout: float = 30.0) -> None:
        raise NotImplementedError

    def shown(self, seq: int) -> None:
        """The page has shown rendered frame ``seq``."""
        latency = self.display.mark_shown(seq)
        if latency is not None:
            self.stats.record_display(latency)

    def state(self) -> SessionState:
        info = self.capture.source.info
        latest = self.display.latest
        slot = self.capture.slot
        notice, rejected, busy = self._prompt_state()
        dropped = dropped_count(slot, self.stats, self._done, self._skipped_frames())
        return SessionState(
            self._status,
            self._message,
            info.source,
            info.width,
            info.height,
            self.stats.snapshot(slot.captured, dropped),
            latest.objects if latest is not None else (),
            latest.capture_index if latest is not None else None,
            tuple(str(p) for p in self.saved),
            notice,
            rejected,
            busy,
        )

    def wait(self, timeout: float | None = None) -> bool:
        """True once the session has ended (source end or failure, or ``close``)."""
        return self._done.wait(timeout)

    def _prompt_state(self) -> tuple[str | None, int | None, bool]:
        """(the last rejected prompt's notice, its object, prompts pending)."""
        return None, None, False

    def _skipped_frames(self) -> int:
        """Frames sent for tracking that the tracker skipped (remote sessions)."""
        return 0

    def _record_end(self, end: SourceEnd | None, before_save: Callable[[], None] | None = None):
        """Finish saving (after ``before_save``), set the final status, end the page's stream."""
        message = end.message if end is not None else "stopped by the user"
        if self.recorder is not None:
            try:
                if before_save is not None:
                    before_save()
                self.saved = self.recorder.close()
            except (OSError, RuntimeError, ValueError) as error:
                message += f"; saving failed: {error}"
        self._status, self._message = status_for(end), message
        self.display.close()
        self._done.set()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LiveSession(PageSession):
    """Runs the loop on a thread; a context manager (``start`` on enter, ``close`` on exit)."""

    def __init__(
        self,
        capture: Capture,
        make_tracker: Callable[[], RewindableTracker],
        *,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT_S,
        recorder: Recorder | None = None,
    ) -> None:
        info = capture.source.info
        self.capture = capture
        self.recorder = recorder
        self.controls = Controls(info.width, info.height, self._submit)
        self.tracking = LiveTracking(
            make_tracker,
            on_final=recorder.add if recorder is not None else None,
            on_rejected=self.controls.forget,
        )
        self.display = Display()
        self.stats = LiveStats()
        self.stall_timeout = stall_timeout
        self.saved: list[Path] = []
        self._status, self._message = Status.RUNNING, f"playing {info.source}"
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-session", daemon=True)

    def _submit(self, command) -> None:
        self.tracking.queue.submit(command)

    def start(self) -> LiveSession:
        self.capture.start()
        self._thread.start()
        return self

    def _run(self) -> None:
        end: SourceEnd | None = None
        try:
            end = self._loop()
        except StreamsegError as error:
            end = SourceEnd(f"tracking failed: {error}", True)
        except Exception as error:  # report, never die silently with the page waiting
            end = SourceEnd(f"tracking failed: {error!r}", True)
        finally:
            self._finish(end)

    def _loop(self) -> SourceEnd | None:
        while not self._stop.is_set():
            frame = self.capture.take(_POLL_S)
            if frame is None:
                end = self.capture.end or self.capture.stalled(self.stall_timeout)
                if end is not None:
                    return end
                continue
            started = time.monotonic()
            objects = self.tracking.process(frame)
            shown = self.display.publish(frame.index, frame.captured_at, frame.rgb, objects)
            self.stats.record_frame(
                frame.captured_at, shown.rendered_at, shown.rendered_at - started
            )
        return None

    def _finish(self, end: SourceEnd | None) -> None:
        self.capture.close()
        # the last frames kept for rewinding are final now
        self._record_end(end, before_save=self.tracking.flush)

    def _prompt_state(self) -> tuple[str | None, int | None, bool]:
        return self.tracking.notice, self.tracking.rejected, self.tracking.busy

    def close(self, timeout: float = 30.0) -> None:
        """Stop the loop after the frame in progress and finish saving."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        elif not self._done.is_set():
            self._finish(None)


def dropped_count(
    slot: FrameSlot, stats: LiveStats, done: threading.Event, skipped: int = 0
) -> int:
    """Frames never processed: replaced in the slot or skipped by a remote tracker while the
    session runs; once it has ended, every captured frame that was not processed."""
    if done.is_set():
        return max(slot.captured - stats.processed, 0)
    return slot.dropped + skipped
