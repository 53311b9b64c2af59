"""Stop signals, delivered for real to this process (pytest runs tests in the main thread)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from worker.runtimes.stopping import Stopped, StopRequest, stop_signals_as_interrupt


def deliver(signum: int) -> None:
    """Raise ``signum`` in this process: its Python handler has run when this returns."""
    signal.raise_signal(signum)


@pytest.mark.parametrize(
    ("signum", "raised"),
    [
        (signal.SIGINT, KeyboardInterrupt),
        (signal.SIGTERM, Stopped),
        (signal.SIGHUP, Stopped),
    ],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_a_first_signal_is_only_recorded_and_check_raises_it(signum: int, raised: type) -> None:
    before = signal.getsignal(signum)
    with StopRequest() as stop:
        deliver(signum)  # would raise here without the request
        assert stop.requested and stop.signum == signum
        with pytest.raises(raised) as info:
            stop.check()
    assert type(info.value) is raised
    if raised is Stopped:
        assert info.value.signum == signum
    assert signal.getsignal(signum) is before  # restored on exit


def test_nothing_requested_check_and_sleep_return() -> None:
    with StopRequest() as stop:
        stop.check()
        stop.sleep(0.01)
        assert not stop.requested


def test_a_second_signal_raises_at_once() -> None:
    with StopRequest() as stop:
        deliver(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            deliver(signal.SIGINT)
    assert stop.signum == signal.SIGINT


def test_sleep_ends_early_on_a_signal_from_another_thread() -> None:
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
    start = time.monotonic()
    with StopRequest() as stop:
        timer.start()
        try:
            with pytest.raises(Stopped):
                stop.sleep(120)
        finally:
            timer.cancel()
    assert time.monotonic() - start < 60  # not the 120 s asked for


def test_outside_the_main_thread_nothing_is_installed() -> None:
    seen: list[object] = []

    def open_request() -> None:
        with StopRequest() as stop:
            seen.append(signal.getsignal(signal.SIGINT))
            stop.check()
            seen.append(stop.requested)

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=open_request)
    thread.start()
    thread.join()
    assert seen == [before, False]


def test_stop_signals_as_interrupt_raises_stopped_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as info, stop_signals_as_interrupt():
        deliver(signal.SIGTERM)
    assert info.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.fixture
def sighup_ignored() -> Iterator[None]:
    """SIGHUP ignored in this process, as ``nohup`` starts a command."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGHUP, previous)


def test_a_request_leaves_an_ignored_signal_ignored(sighup_ignored: None) -> None:
    with StopRequest() as stop:
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        deliver(signal.SIGHUP)
        stop.check()
        assert not stop.requested
        deliver(signal.SIGTERM)  # the others are still taken
        assert stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN


def test_stop_signals_as_interrupt_leaves_an_ignored_signal_ignored(sighup_ignored: None) -> None:
    with stop_signals_as_interrupt():
        deliver(signal.SIGHUP)  # nothing raised
        with pytest.raises(Stopped):
            deliver(signal.SIGTERM)
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
