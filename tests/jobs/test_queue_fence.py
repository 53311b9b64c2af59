"""Fencing a job that runs twice: a worker whose heartbeats stalled (SIGSTOP) past abandoned-after
loses its job to a second worker; when it wakes, its attempt stops at its next write and leaves
the job, its meta and its outputs as the newer attempt made them."""

from __future__ import annotations

import signal

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from configs.settings import load_settings
from jobs.queue import JobMeta, JobProgress, JobQueue, read_meta
from jobs.storage import MANIFEST_NAME
from tests.jobs.conftest import ONE_FRAME_PROMPTS, job_on_one_of_two, unique_queue
from worker.runtimes.queue.fence import AttemptFence, Superseded


def _fetch(redis, job_id: str) -> Job:
    return Job.fetch(job_id, connection=redis, serializer=JSONSerializer)


def _state(redis, worker_name: str) -> str | None:
    from rq import Worker

    worker = Worker.find_by_key(f"rq:worker:{worker_name}", connection=redis)
    return None if worker is None else worker.get_state()


def test_the_older_attempts_writes_are_refused(redis_client, tmp_path):
    jobs = JobQueue(redis_client, unique_queue(), load_settings().queue)
    spec = {"source": "/v.mp4", "output": str(tmp_path), "prompts": ONE_FRAME_PROMPTS}
    job_id = jobs.submit(spec).id
    older = AttemptFence.take(redis_client, job_id)
    newer = AttemptFence.take(redis_client, job_id)
    assert newer.token == older.token + 1

    mine = JobMeta(progress=JobProgress(attempt=2, frame=7))
    assert newer.write_meta(_fetch(redis_client, job_id), mine)
    stale = JobMeta(progress=JobProgress(attempt=1, frame=40))
    assert not older.write_meta(_fetch(redis_client, job_id), stale)
    assert read_meta(_fetch(redis_client, job_id)) == mine  # the newer attempt's, untouched

    newer.check("publishing the outputs")
    with pytest.raises(Superseded, match=rf"token {older.token} .* by token {newer.token}: pub"):
        older.check("publishing the outputs")
    assert (older.owns(), newer.owns()) == (False, True)

    jobs.submit(spec, job_id=job_id)  # a reused id: its attempts are newer than all before
    assert AttemptFence.take(redis_client, job_id).token == newer.token + 1
    assert not newer.owns()


def test_a_stalled_worker_leaves_the_newer_attempts_job_and_outputs(
    workers, bear_clip, sam2_checkpoint, reference_run, tmp_path
):
    out = tmp_path / "out"
    two = job_on_one_of_two(workers, bear_clip, out, sam2_checkpoint)
    jobs, job_id, stalled, other = two.jobs, two.job_id, two.running, two.other

    stalled.process.send_signal(signal.SIGSTOP)  # alive, but no heartbeat and no frame
    try:
        final = workers.wait_for(lambda: (v := jobs.get(job_id)).done and v, 300, "attempt 2")
        assert final.state == "finished" and final.worker == other.name, other.log()[-3000:]
        published = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    finally:
        stalled.process.send_signal(signal.SIGCONT)
    workers.wait_for(lambda: _state(jobs.redis, stalled.name) == "idle", 120, "the stalled one")
    assert "this attempt was superseded" in stalled.log()

    after = jobs.get(job_id)
    assert (after.state, after.worker) == ("finished", other.name)
    assert after.meta == final.meta and after.meta.progress.attempt == 2  # no stale progress
    assert after.meta.lost == 1 and after.ended_at == final.ended_at
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == published
    assert published["tracks.json"] == (reference_run / "tracks.json").read_bytes()
    assert MANIFEST_NAME in published
    raw = _fetch(jobs.redis, job_id)
    assert raw.started_job_registry.get_job_ids(cleanup=False) == []  # its execution is gone
    assert stalled.process.poll() is None, stalled.log()[-3000:]  # and it serves on
    assert "found an unhandled exception" not in stalled.log()
