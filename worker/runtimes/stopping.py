"""Stop signals: Ctrl-C (SIGINT), SIGTERM and SIGHUP, raised or requested.

Two ways to stop a process on a signal, both in the main thread only (signals reach no
other thread):

* :func:`stop_signals_as_interrupt`: SIGTERM and SIGHUP raise :class:`Stopped` wherever the
  main thread is, like Ctrl-C's ``KeyboardInterrupt``, so that the same cleanup runs.
* :class:`StopRequest`: the first signal only records that a stop was asked for; the loop that
  opened it calls :meth:`StopRequest.check` at its safe points (between calls into
  libraries), which raises there. An exception raised at a random point can land inside a
  library's lock (redis-py's connection pool, tqdm's bars and monitor thread), and the
  cleanup that follows can then wait on that lock for ever; a requested stop cannot. A
  second signal raises at once, for a loop stuck in a call.

Both leave alone a signal this process was started ignoring, as Python does for Ctrl-C: under
``nohup`` SIGHUP stays ignored, and in a background job of a script SIGINT does.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGTERM, SIGHUP) raised like Ctrl-C, so the same cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupt_for(signum: int) -> KeyboardInterrupt:
    """The exception a signal stops the main thread with: ``KeyboardInterrupt`` for Ctrl-C,
    :class:`Stopped` for the others."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _install(signals: tuple[int, ...], handler) -> dict[int, object]:
    """Set ``handler`` for each of ``signals`` not ignored now; their previous handlers."""
    return {
        signum: signal.signal(signum, handler)
        for signum in signals
        if signal.getsignal(signum) != signal.SIG_IGN
    }


def _restore(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@dataclass
class StopRecord:
    """The stop signal :func:`stop_signals_as_interrupt` raised for, if any. A library can
    swallow the exception a handler raised inside it (PyAV turns it into its own
    ``InterruptedError``); what was asked for is still known here."""

    signum: int | None = None


@contextmanager
def stop_signals_as_interrupt() -> Iterator[StopRecord]:
    """SIGTERM and SIGHUP raise :class:`Stopped` in the main thread; once one has, further
    stop signals are ignored so that the cleanup it started is not cut short."""
    record = StopRecord()
    if not _in_main_thread():
        yield record
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        for other in STOP_SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        record.signum = signum
        raise Stopped(signum)

    previous = _install(STOP_SIGNALS, stop)
    try:
        yield record
    finally:
        _restore(previous)


class StopRequest:
    """A context manager: while it is open, Ctrl-C, SIGTERM and SIGHUP ask for a stop that
    :meth:`check` raises (``KeyboardInterrupt`` or :class:`Stopped`), and a second signal
    raises at once (later ones are then ignored until it closes). Outside the main thread it
    installs nothing (``check`` never raises), nor for a signal ignored when it opens.

    The handler only stores an int: no lock, no ``threading.Event`` (whose ``set`` takes a
    lock the interrupted main thread may hold)."""

    SIGNALS = (signal.SIGINT, *STOP_SIGNALS)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if _in_main_thread():
            self._previous = _install(self.SIGNALS, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _restore(self._previous)
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        """Raise the requested stop, if one was requested."""
        if self.signum is not None:
            raise interrupt_for(self.signum)

    def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds`` (less if a stop is requested), then :meth:`check`."""
        deadline = time.monotonic() + seconds
        while self.signum is None and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))
        self.check()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # the second: at once, and no more during the cleanup
            for taken in self._previous:
                signal.signal(taken, signal.SIG_IGN)
            raise interrupt_for(self.signum)
        self.signum = signum
