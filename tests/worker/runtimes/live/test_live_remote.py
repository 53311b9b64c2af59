"""A remote live session through Redis streams, against a real redis-server started here: a
file-simulated camera on the capture side, the random-weight SAM 2 on an rq queue worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq import Queue, SimpleWorker

from jobs.media import ModelInfo
from jobs.redis_keys import LIVE_QUEUE, live_session_keys
from jobs.tracks import read_tracks
from tests.conftest import TEST_IMAGE_SIZE, TEST_MODEL
from tests.worker.runtimes.live.live_support import (
    SlowTracker,
    redis_server,
    torch_threads,
    write_synthetic_clip,
)
from worker.runtimes.live import remote_wire as wire
from worker.runtimes.live.capture import Capture
from worker.runtimes.live.recorder import Recorder
from worker.runtimes.live.remote_capture import RemoteCaptureSession
from worker.runtimes.live.remote_session_job import (
    RemoteModel,
    RemoteSessionSpec,
    RemoteSummary,
    RemoteTrackerLoop,
    run_remote_session_job,
)
from worker.runtimes.live.session import Status
from worker.runtimes.live.sources import SyntheticSource, VideoFileSource


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


class _StreamWatcher:
    """Samples the frames and results streams while a session runs."""

    def __init__(self, client, session_id: str) -> None:
        self.client = client
        self.frames_key, self.results_key, _ = live_session_keys(session_id)
        self.samples: list[tuple[int, int, int]] = []  # (frames length, oldest seq, answered)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            answered = self.client.xrevrange(self.results_key, count=1)
            oldest = self.client.xrange(self.frames_key, count=1)
            if answered and oldest and b"seq" in answered[0][1]:
                length = self.client.xlen(self.frames_key)
                seq = int(oldest[0][1][b"seq"])
                self.samples.append((length, seq, int(answered[0][1][b"seq"])))

    def __enter__(self) -> _StreamWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_remote_session_on_a_queue_worker_returns_masks(
    redis_url: str, loaded_model, sam2_checkpoint: Path, tmp_path: Path
) -> None:
    client = wire.connect(redis_url)
    session_id = "camera-on-a-laptop"
    clip = write_synthetic_clip(tmp_path / "camera.mp4", num_frames=60, fps=10)
    capture = Capture(VideoFileSource(str(clip), realtime=True))
    recorder = Recorder(tmp_path / "saved", 320, 240, 10.0, ModelInfo(name="remote"))
    session = RemoteCaptureSession(capture, client, session_id, recorder=recorder)
    model = RemoteModel(TEST_MODEL, str(sam2_checkpoint), TEST_IMAGE_SIZE, "cpu")
    queue = Queue(LIVE_QUEUE, connection=client)
    job = queue.enqueue(run_remote_session_job, RemoteSessionSpec(session_id, redis_url, model))
    with torch_threads(1), session, _StreamWatcher(client, session_id) as watcher:
        assert session.controls.click(None, 80, 120) == 1  # on the disc of frame 0
        SimpleWorker([queue], connection=client).work(burst=True, logging_level="WARNING")
        assert session.wait(10)
    summary = job.return_value()
    state = session.state()
    print(f"\nremote: {state.stats.summary()}; tracker side: {summary}")
    assert (
        isinstance(summary, RemoteSummary)
        and summary.reason == "the capture side ended the session"
    )
    assert state.status is Status.ENDED and "ended after 60 frames" in state.message
    assert 2 <= state.stats.processed == summary.frames
    assert state.stats.dropped == state.stats.captured - state.stats.processed
    assert [o.obj_id for o in state.objects] == [1]
    tracks = read_tracks(tmp_path / "saved" / "tracks.json")
    first = tracks.objects[0].frames[0]
    assert first.frame == 0 and first.visible and first.mask()[120, 80]  # the click's mask
    assert len(tracks.objects[0].frames) == state.stats.processed
    # the frames stream never keeps what the tracker has moved past
    assert watcher.samples and all(oldest >= answered for _, oldest, answered in watcher.samples)
    assert max(length for length, _, _ in watcher.samples) < 60
    assert client.exists(live_session_keys(session_id)[0]) == 0  # removed when it ended


def test_missing_tracker_side_is_reported_not_waited_for(redis_url: str) -> None:
    client = wire.connect(redis_url)
    capture = Capture(SyntheticSource(64, 48, 30, None))
    session = RemoteCaptureSession(capture, client, "nobody-serves-this", first_result_timeout=1.0)
    with session:
        assert session.wait(5)
    state = session.state()
    assert state.status is Status.FAILED
    assert state.message == (
        "no remote tracker took session nobody-serves-this within 1 s "
        "(is a worker serving the live queue?)"
    )


def test_tracker_side_stops_when_the_capture_side_goes_away(redis_url: str) -> None:
    client = wire.connect(redis_url)
    loop = RemoteTrackerLoop(client, "abandoned", lambda w, h: SlowTracker(0.0), idle_timeout_s=0.5)
    summary = loop.run()  # returns: it does not wait for a capture side that never comes
    assert summary == RemoteSummary(0, 0, "no frame from the capture side for 0.5 s")
    last = client.xrevrange(live_session_keys("abandoned")[1], count=1)[0][1]
    assert last == {b"end": b"no frame from the capture side for 0.5 s"}


def test_unreachable_redis_is_a_one_line_error() -> None:
    from configs.errors import TransientError
    from tests.worker.runtimes.live.live_support import free_port

    with pytest.raises(TransientError, match=r"cannot reach Redis at redis://127\.0\.0\.1:"):
        wire.connect(f"redis://127.0.0.1:{free_port()}/0")
