"""The overlay the page shows: rendering, JPEG encoding, and the newest-rendered-frame slot.

The page fetches frames one at a time (``wait_newer``), so it only ever receives the newest
rendered frame; when it asks for the next one it reports the previous one shown, which gives
the capture-to-display latency on the capture side's clock (``mark_shown``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from jobs.mask_codec import mask_bbox
from jobs.overlay import draw_overlay, object_color
from worker.engines.contract import ObjectResult

JPEG_QUALITY = 85
_SHOWN_MEMORY = 64  # capture times of this many recent frames are kept for mark_shown


@dataclass(frozen=True)
class ObjectView:
    """What the page lists for an object: colour, mask area and box ``[x, y, w, h]``."""

    obj_id: int
    color: tuple[int, int, int]
    area: int
    bbox: tuple[int, int, int, int]
    score: float
    visible: bool

    def to_json(self) -> dict:
        return {
            "id": self.obj_id,
            "color": list(self.color),
            "area": self.area,
            "bbox": list(self.bbox),
            "score": round(self.score, 3),
            "visible": self.visible,
        }


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    """``seq``: 1, 2, ... in rendering order; ``capture_index``: the source frame's index."""

    seq: int
    capture_index: int
    jpeg: bytes
    captured_at: float
    rendered_at: float
    objects: tuple[ObjectView, ...]
    masks: tuple[ObjectResult, ...] = ()  # (H, W) bool each: the browser camera's overlay
    width: int = 0
    height: int = 0


def render_jpeg(
    rgb: np.ndarray, objects: list[ObjectResult]
) -> tuple[bytes, tuple[ObjectView, ...]]:
    """The overlay of ``objects`` on ``rgb`` (H, W, 3 uint8) as JPEG, and what the page lists."""
    visible = {o.obj_id: o.mask for o in objects if o.visible}
    picture = draw_overlay(rgb, visible) if visible else rgb
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise RuntimeError("JPEG encoding of the overlay failed")
    views = tuple(
        ObjectView(
            o.obj_id,
            object_color(o.obj_id),
            int(o.mask.sum()),
            tuple(mask_bbox(o.mask)),
            o.score,
            o.visible,
        )
        for o in sorted(objects, key=lambda o: o.obj_id)
    )
    return encoded.tobytes(), views


class Display:
    """The newest rendered frame, waited on by the page; ``close()`` wakes every waiter."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._latest: RenderedFrame | None = None
        self._captured_at: OrderedDict[int, float] = OrderedDict()
        self._seq = 0
        self._listeners: list[Callable[[], None]] = []
        self.closed = False

    def add_listener(self, listener: Callable[[], None]) -> None:
        """``listener()`` is called (on the publishing thread) after each publish and on close."""
        with self._cond:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        with self._cond:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def newest_after(self, after_seq: int) -> RenderedFrame | None:
        """The newest frame if its ``seq > after_seq``, else None (does not wait)."""
        latest = self._latest
        return latest if latest is not None and latest.seq > after_seq else None

    @property
    def latest(self) -> RenderedFrame | None:
        return self._latest

    def publish(
        self, capture_index: int, captured_at: float, rgb: np.ndarray, objects: list[ObjectResult]
    ) -> RenderedFrame:
        jpeg, views = render_jpeg(rgb, objects)
        with self._cond:
            self._seq += 1
            frame = RenderedFrame(
                self._seq, capture_index, jpeg, captured_at, time.monotonic(), views,
                tuple(objects), rgb.shape[1], rgb.shape[0],
            )  # fmt: skip
            self._latest = frame
            self._captured_at[frame.seq] = captured_at
            while len(self._captured_at) > _SHOWN_MEMORY:
                self._captured_at.popitem(last=False)
            self._cond.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener()
        return frame

    def wait_newer(self, after_seq: int, timeout: float) -> RenderedFrame | None:
        """The newest frame with ``seq > after_seq``; None on timeout or once closed."""
        with self._cond:
            self._cond.wait_for(self._newer_or_closed(after_seq), timeout)
            latest = self._latest
            return latest if latest is not None and latest.seq > after_seq else None

    def _newer_or_closed(self, after_seq: int):
        return lambda: self.closed or (self._latest is not None and self._latest.seq > after_seq)

    def mark_shown(self, seq: int) -> float | None:
        """Capture-to-display latency (s) of frame ``seq`` the page says it has shown."""
        with self._cond:
            captured_at = self._captured_at.pop(seq, None)
        return None if captured_at is None else time.monotonic() - captured_at

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener()
