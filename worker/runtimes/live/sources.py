"""Live frame sources: cameras, network streams, video files played in real time, generated.

``open_source(spec)`` opens what ``parse_source`` made of a ``--source`` value and returns a
:class:`LiveSource` context manager: ``info`` says what it delivers and ``frames()`` yields
(H, W, 3) uint8 RGB frames at the source's own pace (a camera's rate, a stream's arrival, a
file's timestamps). Opening fails at once with a one-line :class:`SourceError` (no such
device, unreachable stream, not a video); a source that fails later raises it from
``frames()``.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from configs.errors import InputError, StreamsegError
from jobs.media import VideoInfo
from jobs.urls import is_url


class SourceError(InputError):
    """The live source could not be opened, or stopped delivering frames."""


class SourceKind(Enum):
    DEVICE = "device"
    STREAM = "stream"
    FILE = "file"
    SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``--source``: ``target`` is a device index or path, a URL, a file or a size."""

    kind: SourceKind
    target: str
    loop: bool = False


def live_info(width: int, height: int, fps: float, name: str) -> VideoInfo:
    """What a live source delivers, as the one video-metadata type: frame size, nominal frame
    rate, no frame count, and ``source`` a name for messages (``public_label`` for the page)."""
    return VideoInfo(width, height, fps, None, None, 0, name)


def public_label(name: str) -> str:
    """A file's base name; a URL's scheme, host and path (no user, password or query)."""
    if is_url(name):
        from urllib.parse import urlsplit

        try:
            url = urlsplit(name)
            host = url.hostname or ""
            port = f":{url.port}" if url.port else ""
        except ValueError:
            return name.split("://", 1)[0] + "://(stream)"
        return f"{url.scheme}://{host}{port}{url.path}"
    if os.sep in name or (os.altsep and os.altsep in name):
        return Path(name).name
    return name


_LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "tcp", "srt", "rtp")
_SYNTHETIC = re.compile(r"^synthetic(?::(\d+)x(\d+)(?:@(\d+(?:\.\d+)?))?)?$")


def parse_source(text: str, *, loop: bool = False) -> SourceSpec:
    """``0`` / ``/dev/video0``: a camera; ``rtsp://...``, ``http://...``: a stream; a path: a
    video file played at its real-time rate; ``synthetic[:WxH[@FPS]]``: a generated scene."""
    text = text.strip()
    if not text:
        raise SourceError("--source is empty: give a camera index, a device, a URL or a file")
    if text.isdigit() or text.startswith("/dev/"):
        return SourceSpec(SourceKind.DEVICE, text)
    if _SYNTHETIC.match(text):
        return SourceSpec(SourceKind.SYNTHETIC, text, loop)
    if is_url(text):
        if text.lower().startswith("file://"):
            return SourceSpec(SourceKind.FILE, text[len("file://") :], loop)
        return SourceSpec(SourceKind.STREAM, text, loop)
    return SourceSpec(SourceKind.FILE, text, loop)


class LiveSource:
    """An open live source; iterate ``frames()`` once, then ``close()`` (or use ``with``)."""

    info: VideoInfo

    def frames(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or connection; safe to call twice."""

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_source(spec: SourceSpec) -> LiveSource:
    """Open ``spec``; a one-line :class:`SourceError` when it cannot deliver frames."""
    if spec.kind is SourceKind.DEVICE:
        return CameraSource(spec.target)
    if spec.kind is SourceKind.SYNTHETIC:
        width, height, fps = _synthetic_size(spec.target)
        return SyntheticSource(width, height, fps, num_frames=None)
    realtime = spec.kind is SourceKind.FILE or not spec.target.lower().startswith(_LIVE_SCHEMES)
    return VideoFileSource(spec.target, realtime=realtime, loop=spec.loop)


def _synthetic_size(text: str) -> tuple[int, int, float]:
    match = _SYNTHETIC.match(text)
    assert match is not None
    width, height = int(match[1] or 640), int(match[2] or 480)
    fps = float(match[3] or 30)
    if width < 16 or height < 16 or not 0 < fps <= 1000:
        raise SourceError(f"invalid synthetic source {text!r}: size >= 16x16, 0 < fps <= 1000")
    return width, height, fps


# --- cameras (OpenCV) --------------------------------------------------------------------


class CameraSource(LiveSource):
    """A webcam by index (``0``) or device path (``/dev/video0``), read with OpenCV."""

    def __init__(self, target: str) -> None:
        import cv2

        self._cv2 = cv2
        self._target = target
        device = f"/dev/video{target}" if target.isdigit() else target
        if sys.platform.startswith("linux") and not os.path.exists(device):
            raise SourceError(f"no camera {target}: {device} does not exist ({_cameras_found()})")
        self._capture = cv2.VideoCapture(int(target) if target.isdigit() else target)
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(f"cannot open camera {target} ({device}): busy or not a camera")
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver from queueing frames
        ok, first = self._capture.read()
        if not ok:
            self._capture.release()
            raise SourceError(f"camera {target} ({device}) opened but delivered no frame")
        self._first: np.ndarray | None = first
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0) or 30.0
        self.info = live_info(first.shape[1], first.shape[0], fps, f"camera {target}")

    def frames(self) -> Iterator[np.ndarray]:
        if self._first is not None:
            first, self._first = self._first, None
            yield self._cv2.cvtColor(first, self._cv2.COLOR_BGR2RGB)
        while True:
            ok, bgr = self._capture.read()
            if not ok:
                raise SourceError(f"{self.info.source} stopped delivering frames (unplugged?)")
            yield self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._capture.release()


def _cameras_found() -> str:
    devices = sorted(glob.glob("/dev/video*"))
    return f"cameras found: {', '.join(devices)}" if devices else "no cameras found"


# --- video files and streams (PyAV) ------------------------------------------------------


class VideoFileSource(LiveSource):
    """A video file or URL decoded by ``worker.video.source``.

    ``realtime``: frames are released at their presentation times (a file plays like a
    camera); live streams (RTSP, RTMP, UDP...) are not paced, they arrive at their own rate.
    ``loop``: a file starts again at its end (demos).
    """

    def __init__(self, source: str, *, realtime: bool, loop: bool = False) -> None:
        self._source, self._realtime, self._loop = source, realtime, loop
        if not is_url(source) and not Path(source).exists():
            raise SourceError(f"no such file or device: {source}")
        self._video = self._open()
        info = self._video.info
        self.info = live_info(info.width, info.height, info.fps, source)

    def _open(self):
        from worker.video.source import open_video

        try:
            return open_video(self._source)
        except StreamsegError as error:
            raise SourceError(f"cannot open live source {self._source}: {error}") from None

    def frames(self) -> Iterator[np.ndarray]:
        offset = 0.0
        start = time.monotonic()
        while True:
            last_time = offset
            for frame in self._video:
                last_time = offset + frame.time
                if self._realtime:
                    _sleep_until(start + last_time)
                yield frame.rgb
            if not self._loop:
                return
            self._video.close()
            self._video = self._open()
            offset = last_time + 1.0 / self.info.fps

    def close(self) -> None:
        self._video.close()


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# --- generated scenes --------------------------------------------------------------------


@dataclass(frozen=True)
class Disc:
    """Where the generated scene's object is on a frame: centre (x, y) and radius, pixels."""

    x: float
    y: float
    radius: float

    def mask(self, width: int, height: int) -> np.ndarray:
        yy, xx = np.mgrid[:height, :width]
        return (xx - self.x) ** 2 + (yy - self.y) ** 2 <= self.radius**2


DISC_COLOR = (250, 210, 40)


def synthetic_disc(index: int, width: int, height: int) -> Disc:
    """The disc of frame ``index``: it sweeps left and right across the middle, slowly."""
    radius = min(width, height) / 6
    span = width - 4 * radius
    phase = (index * 2.0) % (2 * span)
    x = 2 * radius + (phase if phase <= span else 2 * span - phase)
    return Disc(x, height / 2, radius)


def synthetic_frame(index: int, width: int, height: int) -> np.ndarray:
    """A textured dark-blue background with a yellow disc at ``synthetic_disc(index)``."""
    yy, xx = np.mgrid[:height, :width]
    checks = ((xx // 16 + yy // 16) % 2).astype(np.uint8)
    rgb = np.stack([20 + 20 * checks, 30 + 20 * checks, 90 + 30 * checks], axis=-1)
    rgb[synthetic_disc(index, width, height).mask(width, height)] = DISC_COLOR
    return rgb.astype(np.uint8)


class SyntheticSource(LiveSource):
    """A generated scene at ``fps`` (endless when ``num_frames`` is None): tests and demos."""

    def __init__(self, width: int, height: int, fps: float, num_frames: int | None) -> None:
        self.info = live_info(width, height, fps, f"synthetic {width}x{height}@{fps:g}")
        self._num_frames = num_frames

    def frames(self) -> Iterator[np.ndarray]:
        start = time.monotonic()
        index = 0
        while self._num_frames is None or index < self._num_frames:
            _sleep_until(start + index / self.info.fps)
            yield synthetic_frame(index, self.info.width, self.info.height)
            index += 1
