"""A video piped in through a FIFO: read once, from its first byte, and a stop that ends the
run at once even while the writer stalls with the pipe open."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from jobs.tracks import read_tracks
from tests.support.fifo import FifoWriter
from tests.support.waiting import signal_when_ready
from tests.worker.test_cli_edges import (
    LITE,
    ROOT,
    _env,
    clip_pair,
    leftovers,
    message_lines,
    streamseg_command,
)


@pytest.fixture(scope="module")
def mkv_clips(tmp_path_factory) -> dict[str, Path]:
    """Matroska clips (streamable: nothing needs a seek back, as MP4's index at the end does)."""
    return clip_pair(tmp_path_factory.mktemp("pipe-clips"), ".mkv", long=600)


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of process ``pid`` so far, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def idle(process: subprocess.Popen) -> bool:
    """Whether ``process`` used at most one clock tick of CPU in a second: blocked, here in
    its read of the stalled pipe. (Under load a busy process might look idle; the stop
    then comes mid-work, which must end the run the same way.)"""
    before = cpu_ticks(process.pid)
    time.sleep(1.0)
    return process.poll() is None and cpu_ticks(process.pid) - before <= 1


@contextmanager
def fifo_writer(
    tmp: Path, clip: Path, upto: int | None = None
) -> Iterator[tuple[Path, FifoWriter]]:
    fifo = tmp / "camera.fifo"
    os.mkfifo(fifo)
    writer = FifoWriter(fifo, clip.read_bytes(), upto)
    try:
        yield fifo, writer
    finally:
        writer.release()


def test_a_video_through_a_fifo_gives_what_the_file_gives(mkv_clips, tmp_path):
    """The FIFO is opened once (the checks before the model loads and the run share it), so
    every frame arrives, and the tracks equal those of the same clip read as a file."""
    args = ["--point", "1:20,30", "--no-overlay", "--quiet", *LITE]
    from_file = tmp_path / "from-file"
    done = subprocess.run(
        streamseg_command("segment", mkv_clips["short"], "--out", from_file, *args),
        cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with fifo_writer(tmp_path, mkv_clips["short"]) as (fifo, writer):
        through = subprocess.run(
            streamseg_command("segment", fifo, "--out", tmp_path / "from-fifo", *args),
            cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=600,
        )  # fmt: skip
        assert writer.written.is_set()
    assert through.returncode == 0, through.stderr
    piped = read_tracks(tmp_path / "from-fifo" / "tracks.json", finished=True)
    reference = read_tracks(from_file / "tracks.json", finished=True)
    assert piped.video.num_frames == reference.video.num_frames == 24
    for frame in range(24):
        ours, theirs = piped.masks_at(frame), reference.masks_at(frame)
        assert ours.keys() == theirs.keys() == {1}
        assert np.array_equal(ours[1], theirs[1])


@pytest.mark.parametrize(
    ("signum", "message"),
    [
        (signal.SIGTERM, "streamseg: stopped by SIGTERM; no output was marked complete"),
        (signal.SIGINT, "streamseg: interrupted; no output was marked complete"),
    ],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_stop_while_the_fifo_writer_stalls_ends_the_run(signum, message, mkv_clips, tmp_path):
    """Half the clip is written and the writer then holds the pipe open, sending nothing:
    the decode thread waits in its read. A stop then ends the run with 128 + the signal and
    no debris, while the writer still holds the pipe (it used to wait for the writer)."""
    clip = mkv_clips["long"]
    out = tmp_path / "out"
    with fifo_writer(tmp_path, clip, upto=clip.stat().st_size // 2) as (fifo, writer):
        process = subprocess.Popen(
            streamseg_command("segment", fifo, "--out", out, "--point", "1:20,30", *LITE),
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
        )  # fmt: skip
        _, stderr = signal_when_ready(
            process, lambda: writer.written.is_set() and writer.unread() == 0 and idle(process),
            signum, "streamseg to decode all the writer sent", ready_s=300, exit_s=120,
        )  # fmt: skip
        assert writer.holding  # the pipe was still open when it stopped
    assert process.returncode == 128 + signum, stderr
    assert message_lines(stderr) == [message]
    assert leftovers(out) == set()
