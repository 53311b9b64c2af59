"""The browser's own camera as a live source: frames come from the page over a WebSocket.

``--source browser[:WxH]``: the page captures its camera (``getUserMedia``; browsers lend it
to HTTPS pages and to http://localhost only), scales each frame to W x H and sends it as a
binary WebSocket message (JPEG). Backpressure is newest-frame-only at both ends: the page sends
the next frame only once the server has acknowledged the previous one, and the capture slot
keeps only the newest. Results go back compactly: a JSON text message (frame index, objects)
followed by one binary message, a PNG of the coloured masks (transparent elsewhere) that the
page draws over its own live video, so the picture itself is never late.

Wire (``/ws/camera``)::

    page -> server  binary: JPEG of one W x H frame
    server -> page  {"type": "hello", "width": W, "height": H}
                    {"type": "ack", "frame": capture index | null (not taken: busy)}
                    {"type": "result", "frame": i, "seq": s, "objects": [...]} + binary PNG
                    {"type": "error", "error": "..."} (then the server closes)
"""

from __future__ import annotations

import asyncio
import queue
import re
import threading
from collections.abc import Iterator

import cv2
import numpy as np
from aiohttp import WSMsgType, web

from jobs.overlay import object_color
from worker.runtimes.live.display import Display, RenderedFrame
from worker.runtimes.live.sources import LiveSource, SourceError, live_info

DEFAULT_SIZE = (640, 480)
MAX_SIDE = 1920
MAX_MESSAGE = 4 * 1024 * 1024  # one JPEG frame
_QUEUE = 2  # frames received and not yet taken by the capture thread
_POLL_S = 0.2
_SIZE = re.compile(r"^browser(?::(\d+)x(\d+))?$")
OVERLAY_ALPHA = 128


def browser_size(text: str) -> tuple[int, int] | None:
    """``browser`` / ``browser:WxH`` -> (W, H); None for any other ``--source``."""
    match = _SIZE.match(text.strip())
    if match is None:
        return None
    width, height = int(match[1] or DEFAULT_SIZE[0]), int(match[2] or DEFAULT_SIZE[1])
    if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE):
        raise SourceError(f"invalid browser camera size {width}x{height}: 16 to {MAX_SIDE} px")
    return width, height


class BrowserCameraSource(LiveSource):
    """Frames the page's camera sends; ``frames()`` waits for them until ``close()``.

    One page at a time sends (a second camera connection is refused while one is open).
    Every accepted frame is yielded once, in order: its capture index is the count before it.
    """

    def __init__(self, width: int, height: int) -> None:
        self.info = live_info(width, height, 30.0, f"browser camera {width}x{height}")
        self._frames: queue.Queue[np.ndarray] = queue.Queue(_QUEUE)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._accepted = 0
        self.connected = False

    def offer(self, rgb: np.ndarray) -> int | None:
        """Hand one frame over; its capture index, or None when the reader is behind."""
        with self._lock:
            try:
                self._frames.put_nowait(rgb)
            except queue.Full:
                return None
            self._accepted += 1
            return self._accepted - 1

    def frames(self) -> Iterator[np.ndarray]:
        while not self._closed.is_set():
            try:
                yield self._frames.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    def close(self) -> None:
        self._closed.set()

    async def serve(self, request: web.Request, display: Display) -> web.StreamResponse:
        """The ``/ws/camera`` WebSocket (access was checked by the server)."""
        if self.connected:
            return web.json_response({"error": "another page is already the camera"}, status=409)
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=20.0)
        await ws.prepare(request)
        self.connected = True
        sender = asyncio.create_task(_send_results(ws, display))
        try:
            await ws.send_json({"type": "hello", "width": self.info.width,
                                "height": self.info.height})  # fmt: skip
            await self._receive(ws)
        finally:
            self.connected = False
            sender.cancel()
            await ws.close()
        return ws

    async def _receive(self, ws: web.WebSocketResponse) -> None:
        loop = asyncio.get_running_loop()
        async for message in ws:
            if message.type is not WSMsgType.BINARY:
                await ws.send_json({"type": "error", "error": "send binary JPEG frames only"})
                return
            rgb = await loop.run_in_executor(None, _decode, message.data)
            if rgb is None or rgb.shape[:2] != (self.info.height, self.info.width):
                size = f"{self.info.width}x{self.info.height}"
                await ws.send_json({"type": "error", "error": f"frames must be {size} JPEGs"})
                return
            await ws.send_json({"type": "ack", "frame": self.offer(rgb)})


async def _send_results(ws: web.WebSocketResponse, display: Display) -> None:
    """The newest result not sent yet, one at a time (a slow link skips, never queues)."""
    loop = asyncio.get_running_loop()
    sent = 0
    while not ws.closed and not display.closed:
        frame = display.newest_after(sent)
        if frame is None:
            await asyncio.sleep(0.005)
            continue
        sent = frame.seq
        png = await loop.run_in_executor(None, overlay_png, frame)
        header = {"type": "result", "frame": frame.capture_index, "seq": frame.seq,
                  "objects": [o.to_json() for o in frame.objects]}  # fmt: skip
        try:
            await ws.send_json(header)
            await ws.send_bytes(png)
        except ConnectionError:
            return


def _decode(data: bytes) -> np.ndarray | None:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def overlay_png(frame: RenderedFrame) -> bytes:
    """The frame's visible masks as an RGBA PNG (object colour, half opaque; clear elsewhere)."""
    height, width = frame.height, frame.width
    rgba = np.zeros((height, width, 4), np.uint8)
    for obj in frame.masks:
        if obj.visible:
            rgba[obj.mask] = (*object_color(obj.obj_id), OVERLAY_ALPHA)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    if not ok:
        raise RuntimeError("PNG encoding of the overlay failed")
    return encoded.tobytes()
