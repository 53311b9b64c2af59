"""Shared pieces of the live tests: generated clips, a deliberately slow tracker, redis-server."""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np

from configs.errors import InputError
from jobs.prompts import Prompt
from tests.redis_support import free_port, redis_server  # noqa: F401 (re-exported)
from tests.support.waiting import wait_until  # noqa: F401 (the live tests import it from here)
from worker.engines.contract import FrameResult, ObjectResult
from worker.runtimes.live.sources import Disc, synthetic_frame

REDIS_SERVER = "/usr/bin/redis-server"


def write_synthetic_clip(path: Path, num_frames: int, fps: int, width: int = 320,
                         height: int = 240) -> Path:  # fmt: skip
    """An H.264 clip of ``synthetic_frame(0..num_frames-1)`` at ``fps``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(index, width, height), "rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


class SlowTracker:
    """A tracker that takes ``seconds`` per frame (sleeping, so CPU load does not blur it).

    Each prompted object's mask is a disc of ``radius`` around its last positive click (or its
    box): enough to see prompts reach the tracker and masks come back. ``strict``: a prompt
    without a positive point or a box fails the step of its frame (as the lite tracker's).
    """

    def __init__(
        self, seconds: float, radius: float = 20.0, strict: bool = False, gate=None
    ) -> None:
        self.seconds, self.radius, self.strict = seconds, radius, strict
        self.gate = gate  # a threading.Event: a step with prompts waits for it (when given)
        self.frame_idx = 0
        self.prompts: list[Prompt] = []
        self._centres: dict[int, tuple[float, float]] = {}
        self._unusable: Prompt | None = None
        self._prompted = False

    def add_prompt(self, prompt: Prompt) -> None:
        assert prompt.frame == self.frame_idx, "live prompts go on the next frame"
        self.prompts.append(prompt)
        self._prompted = True
        if self.strict and prompt.box is None and not any(prompt.labels):
            self._unusable = prompt  # rejected when its frame runs, as the lite tracker does
            return
        positives = [p for p, label in zip(prompt.points, prompt.labels, strict=True) if label]
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            self._centres[prompt.obj_id] = ((x0 + x1) / 2, (y0 + y1) / 2)
        elif positives:
            self._centres[prompt.obj_id] = positives[-1]

    def remove_object(self, obj_id: int) -> None:
        self._centres.pop(obj_id, None)

    def snapshot(self) -> bytes:
        return pickle.dumps((self.frame_idx, dict(self._centres), self._unusable))

    def restore(self, data: bytes) -> None:
        self.frame_idx, self._centres, self._unusable = pickle.loads(data)

    def step(self, rgb: np.ndarray) -> FrameResult:
        if self._unusable is not None:
            self._unusable = None
            raise InputError("a point prompt needs at least one positive point")
        if self.gate is not None and self._prompted:
            self.gate.wait()
        self._prompted = False
        deadline = time.perf_counter() + self.seconds
        height, width = rgb.shape[:2]
        objects = {
            obj_id: ObjectResult(obj_id, None, Disc(x, y, self.radius).mask(width, height), 5.0)
            for obj_id, (x, y) in self._centres.items()
        }
        time.sleep(max(deadline - time.perf_counter(), 0.0))
        self.frame_idx += 1
        return FrameResult(self.frame_idx - 1, objects)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the model on ``count`` threads: on 2 cores, the capture, encoding and server
    threads of a live session need the rest (OpenMP threads spin and starve them)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium_driver(profile: Path, extra_flags: tuple[str, ...] = ()):
    """Headless Debian Chromium driven by Selenium (skips where it is not installed)."""
    import os

    import pytest

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = "needs Debian's chromium: apt-get install -y chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=900,700", f"--user-data-dir={profile}",
        *extra_flags,
    ):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request to 127.0.0.1:``port``: status, headers (lower-case names), body. A ``Host``
    in ``headers`` replaces the usual one."""
    import http.client

    headers = dict(headers or {})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.putrequest(method, path, skip_host="Host" in headers)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body if body else None)
        response = connection.getresponse()
        reply = {k.lower(): v for k, v in response.getheaders()}
        return response.status, reply, response.read()
    finally:
        connection.close()
