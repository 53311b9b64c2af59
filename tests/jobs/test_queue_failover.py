"""Fail-over to a worker that is already idle: the worker running a job is SIGKILLed while a
second one waits on the queue; the second requeues the job at its next maintenance pass once
the heartbeats have stopped for ``abandoned_after_s``, resumes it from the checkpoint and
finishes it with the outputs of one uninterrupted run."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from rq.job import Job
from rq.serializers import JSONSerializer

from configs.settings import load_settings
from tests.jobs.conftest import FAST_WORKER_ENV, job_on_one_of_two, unique_queue
from worker.runtimes.queue.rq_hooks import StreamsegWorker

ABANDONED_AFTER_S = int(FAST_WORKER_ENV["STREAMSEG_ABANDONED_AFTER_S"])
MAINTENANCE_S = int(FAST_WORKER_ENV["STREAMSEG_MAINTENANCE_S"])
# Requeued by the idle worker's first maintenance pass after the heartbeats' registration ran
# out: at most abandoned-after + one maintenance interval (+ 1 s of RQ's whole-second scores).
# Doubled for loaded cores; waiting out another timer (a maintenance lock left by the killed
# worker mid-pass was 60 s, the worker's registration 76 s) or never requeueing is far above.
REQUEUE_BOUND_S = 2 * (ABANDONED_AFTER_S + MAINTENANCE_S + 1)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def test_idle_second_worker_resumes_a_killed_workers_job(
    workers, bear_clip, sam2_checkpoint, reference_run, tmp_path
):
    out = tmp_path / "out"
    two = job_on_one_of_two(workers, bear_clip, out, sam2_checkpoint)
    jobs, job_id, idle = two.jobs, two.job_id, two.other
    two.running.kill()
    raw = Job.fetch(job_id, connection=jobs.redis, serializer=JSONSerializer)
    last_beat = _utc(raw.last_heartbeat)  # the killed worker's last one: nobody beats now
    assert raw.get_status() == "started" and idle.process.poll() is None

    back = workers.wait_for(lambda: (v := jobs.get(job_id)).meta.progress.attempt == 2 and v,
                            120, "attempt 2 on the idle worker")  # fmt: skip
    requeued_s = (_utc(back.enqueued_at) - last_beat).total_seconds()
    print(f"\nrequeued {requeued_s:.1f} s after the last heartbeat (bound {REQUEUE_BOUND_S} s)")
    assert ABANDONED_AFTER_S - 1 <= requeued_s <= REQUEUE_BOUND_S, idle.log()[-3000:]
    assert back.worker == idle.name and back.meta.lost == 1

    final = jobs.follow(job_id, poll_s=0.2, timeout_s=300)
    assert final.state == "finished", idle.log()[-3000:]
    assert final.worker == idle.name and final.meta.progress.resumed_from is not None
    assert final.retries_left == load_settings().queue.max_retries - 1  # a lost worker spends one
    for name in ("tracks.json", "overlay.mp4"):  # each frame once, as if never interrupted
        assert (out / name).read_bytes() == (reference_run / name).read_bytes(), name


class _LockWatcher(StreamsegWorker):
    """A real worker that notes the maintenance lock's TTL while it holds it."""

    seen_ttl: list[int] = []

    def _clean_queue(self, queue) -> None:
        self.seen_ttl.append(self.connection.ttl(queue.registry_cleaning_key))
        super()._clean_queue(queue)


def test_a_maintenance_lock_left_by_a_dead_holder_lasts_abandoned_after(redis_client):
    from rq import Queue

    settings = replace(load_settings().queue, abandoned_after_s=ABANDONED_AFTER_S)
    queue = Queue(unique_queue(), connection=redis_client, serializer=JSONSerializer)
    worker = _LockWatcher([queue], connection=redis_client, settings=settings)
    worker.clean_registries()
    assert 0 < worker.seen_ttl[-1] <= ABANDONED_AFTER_S  # RQ's own: 899 s; it was 60 s here
    assert not redis_client.exists(queue.registry_cleaning_key)  # released after the pass
