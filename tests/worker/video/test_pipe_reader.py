"""open_video on a FIFO, in this process: frames as from the file, and a stop signal that
arrives while the read waits on a stalled writer ends the read with that stop."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from configs.errors import VideoDecodeError
from tests.support.clips import write_clip
from tests.support.fifo import FifoWriter
from tests.support.waiting import wait_for
from worker.video.pipe_reader import is_pipe_like
from worker.video.source import open_video


class _Stop(KeyboardInterrupt):
    """What a stop signal's handler raises (as ``worker.runtimes.stopping.Stopped`` does)."""


def _moving_block(count: int) -> list[np.ndarray]:
    frames = []
    for index in range(count):
        rgb = np.full((48, 64, 3), 60, np.uint8)
        rgb[10:30, index % 40 : index % 40 + 20] = (220, 30, 30)
        frames.append(rgb)
    return frames


@pytest.fixture(scope="module")
def mkv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pipe") / "clip.mkv"
    write_clip(path, _moving_block(300))
    return path


def test_a_fifo_gives_the_frames_the_file_gives(mkv, tmp_path):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    assert is_pipe_like(str(fifo)) and not is_pipe_like(str(mkv))
    writer = FifoWriter(fifo, mkv.read_bytes())
    with open_video(fifo) as piped, open_video(mkv) as from_file:
        assert piped.info.width == from_file.info.width == 64
        pairs = list(zip(piped, from_file, strict=True))
    writer.release()
    assert len(pairs) == 300
    assert all(np.array_equal(a.rgb, b.rgb) and a.index == b.index for a, b in pairs)


def test_a_stop_signal_ends_a_read_waiting_on_a_stalled_writer(mkv, tmp_path, capfd):
    """The handler's exception comes out of the frame loop as it was raised (not as a bad
    video, and without PyAV printing a dropped exception), and the pipe is closed."""
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    data = mkv.read_bytes()
    writer = FifoWriter(fifo, data, upto=len(data) // 3)
    frames = 0

    def stop(signum, frame) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGUSR1, stop)
    try:
        with open_video(fifo) as video:
            # a thread sends the signal once the main thread waits in select (poll on Linux)
            main = threading.main_thread().native_id
            waiting = Path(f"/proc/self/task/{main}/wchan")
            threading.Thread(target=_signal_when, args=(waiting, writer), daemon=True).start()
            with pytest.raises(_Stop):
                for _ in video:
                    frames += 1
    finally:
        signal.signal(signal.SIGUSR1, previous)
        writer.release()
    assert 0 < frames < 300
    assert "exception being dropped" not in capfd.readouterr().err


def _signal_when(waiting: Path, writer: FifoWriter) -> None:
    """SIGUSR1 to the main thread once its wait channel is a select/poll wait; if it never
    is (a read that waits elsewhere), the writer closes the pipe instead, so that the test
    fails (no stop raised) rather than hangs."""
    try:
        wait_for(lambda: "poll" in waiting.read_text() or "select" in waiting.read_text(), 60,
                 "the main thread to wait in its read")  # fmt: skip
    except TimeoutError:
        writer.release()
        return
    signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)


def test_a_fifo_with_no_video_in_it_is_refused_in_one_line(tmp_path):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    writer = FifoWriter(fifo, b"this is not a video\n" * 100)
    with pytest.raises(VideoDecodeError, match="not a readable video"):
        open_video(fifo)
    writer.release()


def test_an_mp4_that_needs_a_seek_through_a_pipe_says_why(videos_dir, tmp_path):
    """bikes.mp4 (a real clip) cannot be read without seeking back; from a pipe, which
    cannot, it fails in one line that says what to send instead."""
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    writer = FifoWriter(fifo, (videos_dir / "bikes.mp4").read_bytes())
    with pytest.raises(VideoDecodeError, match="a pipe cannot seek") as error:
        with open_video(fifo) as video:
            for _ in video:
                pass
    writer.release()
    assert "\n" not in str(error.value) and "faststart" in str(error.value)
