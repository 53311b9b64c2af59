"""Polling helpers for tests that wait on other processes or threads."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def wait_until(predicate, timeout: float, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; that value, or None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """:func:`wait_until`, raising ``TimeoutError`` naming ``what`` instead of returning None."""
    value = wait_until(predicate, timeout, interval)
    if not value:
        raise TimeoutError(f"timed out waiting for {what}")
    return value


def blocked_opening_a_fifo(pid: int) -> bool:
    """Whether process ``pid`` is blocked opening a FIFO that has no writer yet (Linux: the
    kernel's wait channel for it)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text() == "wait_for_partner"
    except OSError:
        return False


def signal_when_ready(
    process: subprocess.Popen, ready, signum: int, what: str, ready_s: float, exit_s: float
) -> tuple[str, str]:
    """Wait (up to ``ready_s``) until ``ready()`` holds for the running ``process``, send it
    ``signum`` and collect its (stdout, stderr) as it exits (within ``exit_s``); the process
    is killed on any failure, so no test leaves one behind."""
    try:
        wait_for(lambda: process.poll() is not None or ready(), timeout=ready_s, what=what)
        assert process.poll() is None, process.communicate()
        process.send_signal(signum)
        return process.communicate(timeout=exit_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
