"""Live sources and capture: generated and file sources, real-time pacing, the newest-frame
slot with drop counting, and clear errors for missing devices and failing or stalled sources."""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.worker.runtimes.live.live_support import SlowTracker, write_synthetic_clip
from worker.commands import live as live_command
from worker.runtimes.live.capture import Capture
from worker.runtimes.live.session import LiveSession, Status
from worker.runtimes.live.sources import (
    LiveSource,
    SourceError,
    SourceKind,
    SyntheticSource,
    VideoFileSource,
    live_info,
    open_source,
    parse_source,
    synthetic_disc,
    synthetic_frame,
)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("0", SourceKind.DEVICE),
        ("/dev/video2", SourceKind.DEVICE),
        ("rtsp://camera.local/stream", SourceKind.STREAM),
        ("http://127.0.0.1:8080/video.mjpg", SourceKind.STREAM),
        ("clip.mp4", SourceKind.FILE),
        ("file:///tmp/clip.mp4", SourceKind.FILE),
        ("synthetic:320x240@15", SourceKind.SYNTHETIC),
    ],
)
def test_parse_source_kinds(text: str, kind: SourceKind) -> None:
    assert parse_source(text).kind is kind


@pytest.mark.parametrize(
    ("text", "device"), [("/dev/video97", "/dev/video97"), ("7", "/dev/video7")]
)
def test_missing_camera_is_a_clear_error(text: str, device: str) -> None:
    with pytest.raises(SourceError) as error:
        open_source(parse_source(text))
    message = str(error.value)
    assert f"{device} does not exist" in message and "\n" not in message


def test_live_command_reports_a_missing_camera_before_loading_a_model() -> None:
    parser = argparse.ArgumentParser()
    live_command.register(parser.add_subparsers())
    args = parser.parse_args(["live", "--source", "/dev/video97", "--model", "no-such-model"])
    with pytest.raises(SourceError, match="no camera /dev/video97"):
        args.handler(args)  # (a model named no-such-model would have failed otherwise)


def test_missing_or_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or device"):
        open_source(parse_source(str(tmp_path / "absent.mp4")))
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    with pytest.raises(SourceError, match="cannot open live source"):
        open_source(parse_source(str(text)))


def test_file_source_plays_at_its_real_time_rate(tmp_path: Path) -> None:
    clip = write_synthetic_clip(tmp_path / "clip.mp4", num_frames=12, fps=10)
    with open_source(parse_source(str(clip))) as source:
        assert (source.info.width, source.info.height, source.info.fps) == (320, 240, 10.0)
        started = time.monotonic()
        frames = list(source.frames())
        elapsed = time.monotonic() - started
    assert len(frames) == 12
    assert elapsed >= 1.05, f"12 frames at 10 fps took {elapsed:.2f} s: faster than real time"
    for index in (0, 11):  # the decoded pictures are the generated ones (H.264 quantised)
        error = np.abs(frames[index].astype(int) - synthetic_frame(index, 320, 240)).mean()
        assert error < 4


def test_file_source_loops_when_asked(tmp_path: Path) -> None:
    clip = write_synthetic_clip(tmp_path / "short.mp4", num_frames=4, fps=50)
    with VideoFileSource(str(clip), realtime=True, loop=True) as source:
        frames = list(itertools.islice(source.frames(), 10))
    assert len(frames) == 10
    assert np.abs(frames[4].astype(int) - frames[0].astype(int)).mean() < 1


def test_capture_hands_over_the_newest_frame_and_counts_the_dropped() -> None:
    source = SyntheticSource(64, 48, fps=200, num_frames=120)
    taken = []
    with Capture(source) as capture:
        while True:
            frame = capture.take(timeout=1.0)
            if frame is None:
                if capture.end is not None:
                    break
                continue  # (a loaded machine may starve the capture thread for a while)
            taken.append(frame)
            time.sleep(0.04)  # a consumer 8x slower than the source
    indices = [f.index for f in taken]
    assert indices == sorted(indices) and indices[-1] == 119  # the last frame is never lost
    assert capture.slot.captured == 120
    assert capture.slot.dropped == 120 - len(taken) > 0
    assert capture.end is not None and not capture.end.failed
    assert "ended after 120 frames" in capture.end.message


class _ScriptedSource(LiveSource):
    """Yields ``count`` generated frames, then raises ``error`` or blocks until released."""

    def __init__(self, count: int, error: Exception | None = None) -> None:
        self.info = live_info(64, 48, 30.0, "scripted camera")
        self.count, self.error = count, error
        self.release = threading.Event()
        self.closed = False

    def frames(self) -> Iterator[np.ndarray]:
        for index in range(self.count):
            yield synthetic_frame(index, 64, 48)
        if self.error is not None:
            raise self.error
        self.release.wait(30)

    def close(self) -> None:
        self.closed = True


def test_a_failing_source_is_reported_and_closed() -> None:
    source = _ScriptedSource(3, SourceError("scripted camera stopped delivering frames"))
    with Capture(source) as capture:
        deadline = time.monotonic() + 60  # (a loaded machine may starve the capture thread)
        while capture.end is None and time.monotonic() < deadline:
            capture.take(timeout=1.0)
    assert capture.end is not None and capture.end.failed
    assert capture.end.message == "scripted camera stopped delivering frames"
    assert source.closed


def test_a_stalled_source_ends_the_session_with_a_clear_status() -> None:
    source = _ScriptedSource(3)
    session = LiveSession(Capture(source), lambda: SlowTracker(0.0), stall_timeout=0.4)
    try:
        started = time.monotonic()
        with session:
            assert session.wait(60), "a stalled source must end the session, not hang it"
        state = session.state()
        assert state.status is Status.FAILED
        assert "scripted camera stalled: no frame for" in state.message
        assert time.monotonic() - started >= 0.4  # not before the stall timeout
        assert state.frame == 2  # the newest frame was shown; the older ones were dropped
        assert state.stats.processed + state.stats.dropped == state.stats.captured == 3
        assert session.display.closed
    finally:
        source.release.set()


def test_synthetic_source_is_paced_and_its_disc_moves() -> None:
    source = SyntheticSource(320, 240, fps=50, num_frames=10)
    started = time.monotonic()
    frames = list(source.frames())
    assert time.monotonic() - started >= 0.17  # paced: not faster than 50 fps
    first, last = synthetic_disc(0, 320, 240), synthetic_disc(9, 320, 240)
    assert last.x - first.x == pytest.approx(18.0)
    assert tuple(frames[9][120, int(last.x)]) == (250, 210, 40)
