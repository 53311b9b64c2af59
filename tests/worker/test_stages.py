"""Thread stages around the pipeline: order, bounded look-ahead, errors carried across."""

from __future__ import annotations

import threading

import pytest

from worker.pipeline.stages import OrderedWriter, prefetched


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
