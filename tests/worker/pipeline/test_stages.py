"""Thread stages around the pipeline: order, bounded look-ahead, errors carried across."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jobs.media import ModelInfo
from jobs.prompts import Prompt
from jobs.tracks import read_tracks
from tests.support.clips import write_clip
from worker.engines.sam2video.tracker import StreamingTracker
from worker.pipeline.segment import Cancelled, SegmentRequest, segment_video
from worker.pipeline.stages import OrderedWriter, prefetched
from worker.video.source import open_video


class Counted:
    """An iterable of 0..n-1 that records how far the producer ran ahead of the consumer."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.produced = self.consumed = self.max_ahead = 0
        self.lock = threading.Lock()

    def __iter__(self):
        for i in range(self.n):
            if i == self.fail_at:
                raise ValueError(f"bad item {i}")
            with self.lock:
                self.produced += 1
                self.max_ahead = max(self.max_ahead, self.produced - self.consumed)
            yield i

    def took(self) -> None:
        with self.lock:
            self.consumed += 1


@pytest.mark.parametrize("depth", [1, 3])
def test_prefetched_keeps_order_and_stays_bounded(depth):
    source = Counted(50)
    seen = []
    with prefetched(source, depth) as items:
        for item in items:
            seen.append(item)
            source.took()
    assert seen == list(range(50))
    # at most: ``depth`` queued + one held by the consumer + one being produced
    assert source.max_ahead <= depth + 2


def test_prefetched_raises_the_producers_error_after_the_items_before_it():
    seen = []
    with pytest.raises(ValueError, match="bad item 7"):
        with prefetched(Counted(20, fail_at=7), 2) as items:
            for item in items:
                seen.append(item)
    assert seen == list(range(7))


def test_leaving_early_stops_the_producer():
    source = Counted(10_000)
    with prefetched(source, 2) as items:
        for item in items:
            if item == 3:
                break
    threads = [t for t in threading.enumerate() if t.name == "streamseg-prefetch"]
    assert not threads  # joined on exit
    assert source.produced < 10  # it did not run on to the end


def test_leaving_early_interrupts_a_producer_blocked_inside_its_items():
    """A producer that waits inside ``items`` (a read of a stalled pipe) is not stopped by the
    flag it checks between items; ``interrupt`` cuts the wait short, and the join returns."""
    released = threading.Event()
    interrupts = []

    def stalled():
        yield 0
        released.wait()  # blocks until interrupted: a read that waits for its writer
        yield 1

    def interrupt() -> None:
        interrupts.append(threading.current_thread().name)
        released.set()

    with prefetched(stalled(), 2, interrupt=interrupt) as items:
        assert next(items) == 0
    assert interrupts == ["MainThread"]
    assert not [t for t in threading.enumerate() if t.name == "streamseg-prefetch"]


def test_ordered_writer_runs_calls_in_order():
    written = []
    with OrderedWriter(depth=2) as writer:
        for i in range(100):
            writer.submit(written.append, i)
    assert written == list(range(100))


def test_ordered_writer_raises_the_first_failure_and_runs_nothing_after_it():
    written = []

    def write(i: int) -> None:
        if i == 5:
            raise OSError(28, "No space left on device")
        written.append(i)

    with pytest.raises(OSError, match="No space left"):
        with OrderedWriter(depth=2) as writer:
            for i in range(50):
                writer.submit(write, i)
    assert written == list(range(5))


def test_ordered_writer_finishes_accepted_calls_when_the_block_fails():
    written = []
    with pytest.raises(RuntimeError, match="model failed"):
        with OrderedWriter(depth=4) as writer:
            for i in range(3):
                writer.submit(written.append, i)
            raise RuntimeError("model failed")
    assert written == [0, 1, 2]


def test_ordered_writer_flush_waits_for_everything_submitted():
    written = []
    with OrderedWriter(depth=8) as writer:
        for i in range(20):
            writer.submit(written.append, i)
        writer.flush()
        assert written == list(range(20))  # all of it, before the block ends
        writer.submit(written.append, 20)
    assert written == list(range(21))


# ----- the stages in the pipeline: the same outputs with and without them --------------------
PROMPTS = [
    Prompt(1, 0, points=((160.0, 90.0),), labels=(1,)),
    Prompt(2, 2, box=(40.0, 30.0, 200.0, 160.0)),  # a later prompt: added mid-stream
]


@pytest.fixture(scope="module")
def bear_clip(davis_root, tmp_path_factory) -> Path:
    """8 bear frames at 320x180, H.264."""
    frames = sorted((davis_root / "JPEGImages" / "bear").glob("*.jpg"))[:8]
    rgb = [np.asarray(Image.open(p).convert("RGB").resize((320, 180))) for p in frames]
    path = tmp_path_factory.mktemp("clip") / "bear.mkv"
    write_clip(path, rgb)
    return path


def _segment(clip: Path, loaded_model, out: Path, overlap: bool, stop_after: int | None = None):
    request = SegmentRequest(str(clip), out, PROMPTS, overlap=overlap)
    seen = []

    def should_stop() -> bool:
        seen.append(None)
        return stop_after is not None and len(seen) > stop_after

    return segment_video(
        request,
        lambda info: StreamingTracker(loaded_model, num_frames=info.num_frames),
        ModelInfo(name="test"),
        should_stop=should_stop,
    )


def _decoded(path: Path) -> list[np.ndarray]:
    with open_video(path) as video:
        return [frame.rgb for frame in video]


def test_outputs_are_the_same_with_and_without_the_stages(bear_clip, loaded_model, tmp_path):
    """Decoding ahead and writing behind in threads changes nothing in what is written."""
    threaded = _segment(bear_clip, loaded_model, tmp_path / "threaded", overlap=True)
    inline = _segment(bear_clip, loaded_model, tmp_path / "inline", overlap=False)
    assert threaded.num_frames == inline.num_frames == 8
    assert threaded.object_ids == inline.object_ids == [1, 2]
    tracks = [(tmp_path / name / "tracks.json").read_bytes() for name in ("threaded", "inline")]
    assert tracks[0] == tracks[1]
    masks = read_tracks(tmp_path / "threaded" / "tracks.json").masks_at(5)
    assert set(masks) == {1, 2} and any(m.any() for m in masks.values())
    # overlay.mp4: x264 does not reproduce its bytes from run to run here (two runs without
    # the stages differ too: decoded frames by a mean of up to 0.8 of 255), so the decoded
    # frames are compared: one run's frame against the other's neighbour differs by >= 5.5
    overlays = [_decoded(tmp_path / name / "overlay.mp4") for name in ("threaded", "inline")]
    assert len(overlays[0]) == len(overlays[1]) == 8
    for a, b in zip(*overlays, strict=True):
        assert np.abs(a.astype(np.int16) - b).mean() < 2.0


def test_cancelling_with_the_stages_leaves_nothing(bear_clip, loaded_model, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(Cancelled, match="cancelled at frame 3"):
        _segment(bear_clip, loaded_model, out, overlap=True, stop_after=3)
    assert sorted(p.name for p in out.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("streamseg-")]
