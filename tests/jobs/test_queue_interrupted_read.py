"""A warm shutdown while a job's source blocks (a FIFO with no writer yet, as a slow camera
pipe): the stop interrupts FFmpeg's open with EINTR, which PyAV raises as its own error. The
job goes back on the queue as interrupted; before, it failed for good as a bad video."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from configs.settings import load_settings
from jobs.queue import JobQueue
from tests.jobs.conftest import spec_dict, wait_for


def blocked_on_a_fifo(pid: int) -> bool:
    """Whether process ``pid`` is blocked opening a FIFO that has no writer (Linux)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text() == "wait_for_partner"
    except OSError:
        return False


def test_a_warm_shutdown_while_the_source_blocks_requeues_the_job(
    workers, sam2_checkpoint, tmp_path
):
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    worker = workers.start()
    workers.wait_registered(1)
    jobs = JobQueue.connect(load_settings().queue, workers.redis_url, workers.queue)
    job = jobs.submit(spec_dict(fifo, tmp_path / "out", sam2_checkpoint))
    wait_for(lambda: blocked_on_a_fifo(worker.process.pid), 300, "the job to open the FIFO")

    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=120) == 0, worker.log()[-3000:]
    view = jobs.get(job.id)
    assert view.state == "queued", worker.log()[-3000:]
    assert view.meta.error is not None and view.meta.error.kind == "interrupted"
    assert "interrupted while reading the video" in view.meta.error.message
