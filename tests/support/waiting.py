"""Polling helpers for tests that wait on other processes or threads."""

from __future__ import annotations

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
