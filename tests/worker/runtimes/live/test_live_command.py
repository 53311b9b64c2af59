"""``streamseg live`` itself: a file played to its end in a real subprocess (page served, click
taken, outcome printed, session saved), and an HTTP stream that stalls (the command says so and
returns instead of hanging)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import pytest

from jobs.tracks import read_tracks
from tests.conftest import PROJECT_ROOT, TEST_IMAGE_SIZE, TEST_MODEL
from tests.worker.runtimes.live.live_support import (
    SlowTracker,
    free_port,
    redis_server,
    torch_threads,
    wait_until,
    write_synthetic_clip,
)
from worker.commands import live as live_command
from worker.runtimes.live import remote_wire as wire
from worker.runtimes.live.remote_session_job import RemoteTrackerLoop
from worker.runtimes.live.sources import SourceError, synthetic_frame


def _model_flags(checkpoint: Path) -> list[str]:
    return ["--model", TEST_MODEL, "--checkpoint", str(checkpoint),
            "--image-size", str(TEST_IMAGE_SIZE), "--device", "cpu"]  # fmt: skip


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_live_command_plays_a_file_to_its_end_and_saves_it(
    tmp_path: Path, sam2_checkpoint: Path
) -> None:
    clip = write_synthetic_clip(tmp_path / "clip.mp4", num_frames=30, fps=15)
    port = free_port()
    command = [sys.executable, "-m", "worker.cli", "live", "--source", str(clip),
               "--port", str(port), "--save", str(tmp_path / "out"), "--linger", "0.5",
               *_model_flags(sam2_checkpoint)]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        first = process.stderr.readline()
        assert first.strip() == f"streamseg live: open http://127.0.0.1:{port}/ (Ctrl-C to stop)"
        assert _post(f"http://127.0.0.1:{port}/api/click", {"obj": None, "x": 80, "y": 120}) == {
            "obj": 1
        }
        rest = process.communicate(timeout=90)[1]
    finally:
        process.kill()
    assert process.returncode == 0, rest
    assert f"streamseg live: ended: {clip} ended after 30 frames" in rest
    assert "frames processed of 30 captured" in rest and "dropped" in rest
    assert f"saved {tmp_path / 'out' / 'tracks.json'}" in rest
    tracks = read_tracks(tmp_path / "out" / "tracks.json")
    assert [t.id for t in tracks.objects] == [1]
    assert tracks.objects[0].frames[0].mask()[120, 80]  # the click's frame: the mask is there
    assert (tmp_path / "out" / "overlay.mp4").stat().st_size > 0


def test_sigterm_stops_the_live_command_like_ctrl_c_and_saves(
    tmp_path: Path, sam2_checkpoint: Path
) -> None:
    port = free_port()
    command = [sys.executable, "-m", "worker.cli", "live", "--source", "synthetic:160x120@10",
               "--port", str(port), "--save", str(tmp_path / "out"),
               *_model_flags(sam2_checkpoint)]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        assert process.stderr.readline().startswith("streamseg live: open http://127.0.0.1:")
        assert _post(f"http://127.0.0.1:{port}/api/click", {"x": 40, "y": 60}) == {"obj": 1}
        state = f"http://127.0.0.1:{port}/api/state"
        assert wait_until(lambda: _get_json(state)["stats"]["processed"] >= 2, timeout=120)
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=30)[1]
    finally:
        process.kill()
    assert process.returncode == 0, rest
    assert "streamseg live: stopped: stopped by the user" in rest
    tracks = read_tracks(tmp_path / "out" / "tracks.json")
    assert [t.id for t in tracks.objects] == [1] and tracks.video.num_frames >= 2
    assert (tmp_path / "out" / "overlay.mp4").stat().st_size > 0


@contextmanager
def _stalling_stream(payload: bytes, sent: int) -> Iterator[str]:
    """An HTTP server that sends the first ``sent`` bytes of ``payload`` and then goes quiet
    (the connection stays open), like a camera stream whose sender froze."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            self.wfile.write(payload[:sent])
            self.wfile.flush()
            release.wait(60)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/camera.ts"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def _mpegts(path: Path, num_frames: int, fps: int) -> bytes:
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(index, 320, 240), "rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path.read_bytes()


def test_live_command_reports_a_stalled_stream_and_returns(
    tmp_path: Path, sam2_checkpoint: Path, loaded_model, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = _mpegts(tmp_path / "camera.ts", num_frames=60, fps=15)
    parser = argparse.ArgumentParser()
    live_command.register(parser.add_subparsers())
    with _stalling_stream(payload, len(payload) // 2) as url:
        args = parser.parse_args(
            [
                "live",
                "--source",
                url,
                "--port",
                "0",
                "--stall-timeout",
                "1",
                "--linger",
                "0",
                *_model_flags(sam2_checkpoint),
            ]  # fmt: skip
        )
        with torch_threads(1), pytest.raises(SourceError) as error:
            args.handler(args)  # returns (gives up) instead of waiting for the stream
    assert str(error.value).startswith(f"{url} stalled: no frame for ")
    err = capsys.readouterr().err
    assert f"streamseg live: failed: {url} stalled: no frame for" in err


def test_live_command_remote_capture_side_with_a_tracker_side_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = write_synthetic_clip(tmp_path / "camera.mp4", num_frames=30, fps=15)
    port = free_port()
    with redis_server(tmp_path) as redis_url:
        parser = argparse.ArgumentParser()
        live_command.register(parser.add_subparsers())
        args = parser.parse_args(
            [
                "live",
                "--source",
                str(clip),
                "--redis",
                redis_url,
                "--session",
                "laptop",
                "--no-enqueue",
                "--port",
                str(port),
                "--linger",
                "0",
            ]  # fmt: skip
        )
        outcome: list[int] = []
        capture_side = threading.Thread(target=lambda: outcome.append(args.handler(args)))
        capture_side.start()
        tracker = SlowTracker(0.05)
        tracker_side = RemoteTrackerLoop(wire.connect(redis_url), "laptop", lambda w, h: tracker)
        url = f"http://127.0.0.1:{port}/api/click"
        clicked = threading.Timer(0.5, lambda: _post(url, {"obj": None, "x": 80, "y": 120}))
        clicked.start()
        summary = tracker_side.run()  # until the capture side ends the session
        capture_side.join(30)
        clicked.join()
    assert outcome == [0]
    assert summary.reason == "the capture side ended the session" and summary.frames > 5
    assert [p.obj_id for p in tracker.prompts] == [1]
    err = capsys.readouterr().err
    assert "streamseg live --serve-remote laptop --redis" in err
    assert f"streamseg live: ended: {clip} ended after 30 frames" in err
