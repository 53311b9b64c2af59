"""Rolling restarts and supervised workers, with real worker processes on a real Redis.

* Six warm shutdowns (SIGTERM, as a deploy sends them) during one job: each requeues it without
  spending a retry, the seventh worker finishes it, and its outputs are byte for byte those of
  one uninterrupted ``streamseg segment`` run.
* ``streamseg worker --devices cpu,cpu``: one child per device; a child SIGKILLed mid-job is
  restarted and the job resumes; SIGTERM stops every child cleanly.
"""

from __future__ import annotations

import os
import signal

from configs.settings import load_settings
from jobs.queue import JobQueue
from tests.jobs.conftest import spec_dict, streamseg, wait_for, worker_pid
from worker.runtimes.queue.job_checkpoint import CHECKPOINT_DIR

RESTARTS = 6


def _same_outputs(out, reference) -> None:
    for name in ("tracks.json", "overlay.mp4"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert not (out / CHECKPOINT_DIR).exists()


def test_six_warm_shutdowns_during_one_job_spend_no_retry(
    workers, bear_clip, sam2_checkpoint, reference_run, tmp_path
):
    settings = load_settings().queue
    jobs = JobQueue.connect(settings, workers.redis_url, workers.queue)
    out = tmp_path / "out"
    job = jobs.submit(spec_dict(bear_clip, out, sam2_checkpoint, checkpoint_every=1))
    for restart in range(1, RESTARTS + 1):
        worker = workers.start()
        wait_for(
            lambda restart=restart: (
                (view := jobs.get(job.id)).state == "started"
                and view.meta.progress.attempt == restart
            ),
            300,
            f"attempt {restart}",
        )
        if restart == 1:  # let the first attempt save, so later ones resume mid-video
            wait_for(lambda: jobs.get(job.id).meta.progress.checkpoint, 300, "a checkpoint")
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=120) == 0, worker.log()[-3000:]
        view = jobs.get(job.id)
        assert view.state == "queued", worker.log()[-3000:]
        assert (view.meta.interruptions, view.meta.failures) == (restart, 0)
        assert view.retries_left == settings.max_retries  # no retry spent
        assert view.meta.error.kind == "interrupted"

    last = workers.start()
    final = jobs.follow(job.id, poll_s=0.2, timeout_s=300)
    assert final.state == "finished", last.log()[-3000:]
    assert final.worker == last.name
    assert final.meta.progress.attempt == RESTARTS + 1
    assert final.meta.progress.resumed_from is not None
    assert (final.meta.interruptions, final.meta.failures) == (RESTARTS, 0)
    _same_outputs(out, reference_run)
    status = streamseg("status", job.id, "--redis", workers.redis_url, "--queue", workers.queue)
    assert status.returncode == 0, status.stderr
    assert f"interrupted {RESTARTS}x (warm shutdowns, no retry spent)" in status.stdout
    assert f"failed 0x (transient 0, worker lost 0); {settings.max_retries} retries left" in (
        status.stdout
    )


def test_supervisor_restarts_a_killed_child_and_the_job_resumes(
    workers, bear_clip, sam2_checkpoint, reference_run, tmp_path
):
    # the reference run's thread count: with bf16 autocast (``auto`` on AMX CPUs) the masks
    # depend on it
    supervisor = workers.start(2, "--devices", "cpu,cpu", "--stop-timeout", "60")
    children = {f"{supervisor.name}.0.1", f"{supervisor.name}.1.1"}
    wait_for(lambda: children <= workers.registered(), 180, "one worker per device")
    jobs = JobQueue.connect(load_settings().queue, workers.redis_url, workers.queue)
    out = tmp_path / "out"
    job = jobs.submit(spec_dict(bear_clip, out, sam2_checkpoint, checkpoint_every=1))
    wait_for(lambda: jobs.get(job.id).meta.progress.checkpoint, 300, "a checkpoint")
    victim = jobs.get(job.id).worker
    assert victim in children
    os.kill(worker_pid(workers.redis_url, victim), signal.SIGKILL)

    slot = victim.split(".")[-2]
    wait_for(lambda: f"{supervisor.name}.{slot}.2" in workers.registered(), 180, "a restart")
    final = jobs.follow(job.id, poll_s=0.2, timeout_s=300)
    assert final.state == "finished", supervisor.log()[-4000:]
    assert final.meta.progress.attempt == 2 and final.meta.progress.resumed_from is not None
    assert (final.meta.lost, final.meta.interruptions) == (1, 0)
    _same_outputs(out, reference_run)
    assert "marked abandoned" in supervisor.log()  # requeued without waiting for the timeout

    alive = workers.registered()
    assert victim not in alive  # the supervisor removed the dead child's registration
    pids = [worker_pid(workers.redis_url, name) for name in alive]
    supervisor.process.send_signal(signal.SIGTERM)
    assert supervisor.process.wait(timeout=120) == 0, supervisor.log()[-4000:]
    assert not workers.registered() & alive  # each child said goodbye to Redis
    for pid in pids:
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
