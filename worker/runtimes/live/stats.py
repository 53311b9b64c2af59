"""Per-frame latency, processing time, throughput and drop counts of a live session.

``latency``: capture to rendered overlay, per processed frame. ``display``: capture to the
moment the page reported the frame shown (it asks for the next one), on the capture side's
clock. Percentiles and fps are over the last ``WINDOW_S`` seconds (a change shows at once; a
stalled picture reads 0 fps, not its old rate); counts are for the whole session.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

FPS_WINDOW_S = 2.0
WINDOW_S = 5.0


@dataclass(frozen=True)
class StatsSnapshot:
    """Milliseconds; ``None`` where nothing was measured yet."""

    captured: int
    processed: int
    dropped: int
    fps: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_max_ms: float | None
    processing_p50_ms: float | None
    display_p50_ms: float | None
    display_p95_ms: float | None

    def to_json(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f} ms"

        return (
            f"{self.processed} frames processed of {self.captured} captured, "
            f"{self.dropped} dropped; {self.fps:.1f} fps; latency p50 {ms(self.latency_p50_ms)}, "
            f"p95 {ms(self.latency_p95_ms)}; processing p50 {ms(self.processing_p50_ms)}"
        )


class LiveStats:
    """Thread-safe recorder; the session records, the page and the command read snapshots."""

    def __init__(self, window: int = 300) -> None:
        self._lock = threading.Lock()
        # (time recorded, value) of the last ``window`` frames, read over the last WINDOW_S
        self._latency: deque[tuple[float, float]] = deque(maxlen=window)
        self._processing: deque[tuple[float, float]] = deque(maxlen=window)
        self._display: deque[tuple[float, float]] = deque(maxlen=window)
        self._rendered_at: deque[float] = deque(maxlen=window)
        self.processed = 0

    def record_frame(self, captured_at: float, rendered_at: float, processing_s: float) -> None:
        """One processed frame: overlay ready at ``rendered_at``; ``processing_s`` of work."""
        with self._lock:
            self._latency.append((rendered_at, rendered_at - captured_at))
            self._processing.append((rendered_at, processing_s))
            self._rendered_at.append(rendered_at)
            self.processed += 1

    def record_display(self, latency_s: float) -> None:
        with self._lock:
            self._display.append((time.monotonic(), latency_s))

    def latencies(self) -> list[float]:
        """Capture-to-overlay latencies (seconds) of the last ``window`` frames, oldest first."""
        with self._lock:
            return [value for _, value in self._latency]

    def processing_times(self) -> list[float]:
        """Tracker seconds per frame of the last ``window`` frames, oldest first."""
        with self._lock:
            return [value for _, value in self._processing]

    def snapshot(self, captured: int, dropped: int) -> StatsSnapshot:
        now = time.monotonic()
        with self._lock:
            latency = _percentiles(_recent(self._latency, now), (50, 95, 100))
            processing = _percentiles(_recent(self._processing, now), (50,))
            display = _percentiles(_recent(self._display, now), (50, 95))
            return StatsSnapshot(
                captured=captured,
                processed=self.processed,
                dropped=dropped,
                fps=_fps(self._rendered_at, now),
                latency_p50_ms=latency[0],
                latency_p95_ms=latency[1],
                latency_max_ms=latency[2],
                processing_p50_ms=processing[0],
                display_p50_ms=display[0],
                display_p95_ms=display[1],
            )


def _recent(values: deque[tuple[float, float]], now: float) -> list[float]:
    return [value for at, value in values if at >= now - WINDOW_S]


def _percentiles(values: list[float], qs: tuple[int, ...]) -> list[float | None]:
    if not values:
        return [None] * len(qs)
    return [round(float(v) * 1000.0, 1) for v in np.percentile(np.asarray(values, float), qs)]


def _fps(times: deque[float], now: float) -> float:
    """Frames rendered per second over the last ``FPS_WINDOW_S`` seconds up to ``now``."""
    recent = [t for t in times if t >= now - FPS_WINDOW_S]
    if len(recent) < 2:
        return 0.0
    span = max(now - recent[0], recent[-1] - recent[0])
    return round((len(recent) - 1) / span, 2) if span > 0 else 0.0
