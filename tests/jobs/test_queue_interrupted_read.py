"""A job whose source blocks (a FIFO with no writer yet, as a camera pipe that starts late):
a signal interrupts FFmpeg's open with EINTR, which PyAV raises as its own error. A warm
shutdown puts the job back on the queue as interrupted, and RQ's job timeout (its SIGALRM)
fails it as timed out; before, both failed it for good as a bad video."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from configs.settings import load_settings
from jobs.queue import JobQueue
from tests.jobs.conftest import spec_dict, wait_for
from tests.support.waiting import blocked_opening_a_fifo


@dataclass
class FifoJob:
    """A worker, its queue, and the FIFO (no writer) that jobs read from."""

    worker: object
    jobs: JobQueue
    fifo: Path


@pytest.fixture
def fifo_job(workers, tmp_path) -> FifoJob:
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    worker = workers.start()
    workers.wait_registered(1)
    jobs = JobQueue.connect(load_settings().queue, workers.redis_url, workers.queue)
    return FifoJob(worker, jobs, fifo)


def test_a_warm_shutdown_while_the_source_blocks_requeues_the_job(
    fifo_job, sam2_checkpoint, tmp_path
):
    worker, jobs = fifo_job.worker, fifo_job.jobs
    job = jobs.submit(spec_dict(fifo_job.fifo, tmp_path / "out", sam2_checkpoint))
    wait_for(lambda: blocked_opening_a_fifo(worker.process.pid), 300, "the job to open the FIFO")

    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=120) == 0, worker.log()[-3000:]
    view = jobs.get(job.id)
    assert view.state == "queued", worker.log()[-3000:]
    assert view.meta.error is not None and view.meta.error.kind == "interrupted"
    assert "interrupted while reading the video" in view.meta.error.message


def test_a_job_timeout_while_the_source_blocks_fails_it_as_timed_out(
    fifo_job, sam2_checkpoint, tmp_path
):
    worker, jobs = fifo_job.worker, fifo_job.jobs
    job = jobs.submit(spec_dict(fifo_job.fifo, tmp_path / "out", sam2_checkpoint, timeout_s=5))
    final = jobs.follow(job.id, poll_s=0.2, timeout_s=300)
    assert final.state == "failed", worker.log()[-3000:]
    assert final.meta.error is not None and final.meta.error.kind == "timeout"
    assert final.meta.progress.attempt == 1, final.meta.error  # not retried
    assert worker.process.poll() is None  # the worker lives on
