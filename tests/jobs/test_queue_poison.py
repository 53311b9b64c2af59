"""Poison entries, jobs asking for more than the job function, outputs that cannot be written:
each is moved aside or failed with its reason while one real worker goes on serving jobs.

One ``streamseg worker`` process serves every test of this module; each test ends with a valid
job that finishes on that same worker, which never quits.
"""

from __future__ import annotations

import uuid

import pytest
from redis import Redis
from rq import Callback, Queue
from rq.serializers import JSONSerializer

from jobs.dead_letter import find_dead_letter
from jobs.queue import JOB_FUNCTION
from tests.jobs.conftest import (
    ONE_FRAME_PROMPTS,
    spec_dict,
    streamseg,
    wait_for,
)


def _one_frame(bear_clip, out, checkpoint, **extra) -> dict:
    return spec_dict(bear_clip, out, checkpoint, max_frames=1, outputs=["tracks"],
                     prompts=ONE_FRAME_PROMPTS, **extra)  # fmt: skip


def _a_valid_job_finishes_on_the_same_worker(worker, jobs, bear_clip, checkpoint, out) -> None:
    job = jobs.submit(_one_frame(bear_clip, out, checkpoint))
    final = jobs.follow(job.id, poll_s=0.2, timeout_s=300)
    process = worker.started[0]
    assert final.state == "finished", (final.meta.error, process.log()[-3000:])
    assert final.worker == process.name
    assert process.process.poll() is None, process.log()[-3000:]  # never quit
    assert "found an unhandled exception" not in process.log()


def _garbage_job(redis: Redis, fields: dict) -> str:
    job_id = f"garbage-{uuid.uuid4().hex[:6]}"
    redis.hset(f"rq:job:{job_id}", mapping={"data": "x", **fields})
    return job_id


# (name, put the entry in place -> (entry, where it was), words of the reason)
POISON = [
    ("bad id on the queue", lambda r, q: (r.rpush(f"rq:queue:{q}", "bad/id"), "bad/id")[1],
     "rq:queue:{q}:intermediate", "Job ID must only contain"),
    ("bytes that are no text", lambda r, q: (r.rpush(f"rq:queue:{q}", b"\xff\xfe/"),
     "\\xff\\xfe/")[1], "rq:queue:{q}:intermediate", "malformed job id"),
    ("job hash with a garbage status",
     lambda r, q: _queued(r, q, _garbage_job(r, {"status": "bogus", "origin": q})),
     "rq:queue:{q}:intermediate", "'bogus' is not a valid JobStatus"),
    ("job hash with garbage dates and counts",
     lambda r, q: _queued(r, q, _garbage_job(r, {"created_at": "nope", "retries_left": "x"})),
     "rq:queue:{q}:intermediate", "does not match format"),
    ("bad id in the intermediate list",
     lambda r, q: (r.rpush(f"rq:queue:{q}:intermediate", "a/b"), "a/b")[1],
     "rq:queue:{q}:intermediate", "malformed job id"),
    ("bad id in the started registry",
     lambda r, q: (r.zadd(f"rq:wip:{q}", {"bad/id:e1": 0}), "bad/id:e1")[1], "rq:wip:{q}",
     "malformed job id"),
    ("started entry without an execution",
     lambda r, q: (r.zadd(f"rq:wip:{q}", {"lonely": 0}), "lonely")[1], "rq:wip:{q}",
     "expected JOB_ID:EXECUTION_ID"),
    ("started entry of a garbage job hash", lambda r, q: _started(r, q), "rq:wip:{q}",
     "unreadable job hash"),
    ("bad id in the ready registry",
     lambda r, q: (r.zadd(f"rq:ready:{q}", {"x/y": 0}), "x/y")[1], "rq:ready:{q}",
     "malformed job id"),
]  # fmt: skip


def _queued(redis: Redis, queue: str, job_id: str) -> str:
    redis.rpush(f"rq:queue:{queue}", job_id)
    return job_id


def _started(redis: Redis, queue: str) -> str:
    entry = _garbage_job(redis, {"status": "bogus"}) + ":e1"
    redis.zadd(f"rq:wip:{queue}", {entry: 0})
    return entry


@pytest.mark.parametrize(("name", "put", "source", "words"), POISON, ids=[p[0] for p in POISON])
def test_a_poison_entry_is_moved_aside_and_the_worker_goes_on(
    worker, jobs, bear_clip, sam2_checkpoint, tmp_path, name, put, source, words
):
    entry = put(jobs.redis, worker.queue)
    letter = wait_for(
        lambda: find_dead_letter(jobs.redis, worker.queue, entry), 120, f"{name} moved aside"
    )
    assert letter.source == source.format(q=worker.queue)
    assert words in letter.reason and letter.worker == worker.started[0].name
    _a_valid_job_finishes_on_the_same_worker(worker, jobs, bear_clip, sam2_checkpoint, tmp_path)
    assert find_dead_letter(jobs.redis, worker.queue, entry) == letter  # moved once

    status = streamseg("status", letter.job_id, "--redis", worker.redis_url,
                       "--queue", worker.queue)  # fmt: skip
    assert status.returncode == 2 and status.stdout == "", status.stderr
    assert len(status.stderr.splitlines()) == 1 and "Traceback" not in status.stderr
    assert "moved aside by" in status.stderr and words in status.stderr


def test_status_of_a_malformed_id_is_one_line(worker):
    status = streamseg("status", "bad/id!", "--redis", worker.redis_url, "--queue", worker.queue)
    assert status.returncode == 2, status.stderr
    assert status.stderr.startswith("streamseg: error: bad job id 'bad/id!'")
    assert len(status.stderr.splitlines()) == 1 and "Traceback" not in status.stderr


def test_jobs_asking_for_more_than_the_job_function_are_refused(
    worker, jobs, bear_clip, sam2_checkpoint, tmp_path
):
    spec = _one_frame(bear_clip, tmp_path / "never", sam2_checkpoint)
    with Redis.from_url(worker.redis_url) as raw:
        rq_queue = Queue(worker.queue, connection=raw, serializer=JSONSerializer)
        refused = {
            rq_queue.enqueue_call(
                JOB_FUNCTION, args=(spec,), on_success=Callback("os.getcwd"),
                on_failure=Callback("os.getcwd"),
            ).id: "refusing a job with callbacks (on_success=os.getcwd, on_failure=os.getcwd)",
            rq_queue.enqueue_call(JOB_FUNCTION, args=(spec,), on_stopped=Callback("os.getpid")).id:
                "refusing a job with callbacks (on_stopped=os.getpid)",
        }  # fmt: skip
        first = rq_queue.create_job(JOB_FUNCTION, args=(spec,))  # saved, not yet queued
        first.save()
        dependent = rq_queue.enqueue_call(JOB_FUNCTION, args=(spec,), depends_on=first)
        rq_queue.enqueue_job(first)
        refused[first.id] = "refusing a job other jobs depend on"
        done = jobs.submit(_one_frame(bear_clip, tmp_path / "done", sam2_checkpoint))
        jobs.follow(done.id, poll_s=0.2, timeout_s=300)
        after = rq_queue.enqueue_call(JOB_FUNCTION, args=(spec,), depends_on=done.id)
        refused[after.id] = f"refusing a job that depends on other jobs ({done.id})"

    for job_id, words in refused.items():
        final = jobs.follow(job_id, poll_s=0.2, timeout_s=300)
        assert final.state == "failed", (job_id, final.state)
        assert final.meta.error.kind == "rejected" and words in final.meta.error.message
        assert final.meta.progress.frame == 0 and final.retries_left in (0, None)
        status = streamseg("status", job_id, "--redis", worker.redis_url, "--queue", worker.queue)
        assert status.returncode == 0 and f"reason (rejected): {words}" in status.stdout
    assert jobs.get(dependent.id).state == "deferred"  # its dependency failed: never runs
    assert not (tmp_path / "never").exists()
    _a_valid_job_finishes_on_the_same_worker(worker, jobs, bear_clip, sam2_checkpoint, tmp_path)


@pytest.mark.parametrize(
    ("output", "words"),
    [
        ("/proc/streamseg-not-here/out", "is not writable: FileNotFoundError"),
        ("{tmp}/a-file/out", "is not writable: NotADirectoryError"),
        ("/tmp/" + "x" * 300 + "/out", "is not writable: OSError"),  # name too long
    ],
)
def test_an_unwritable_output_fails_at_frame_zero(
    worker, jobs, bear_clip, sam2_checkpoint, tmp_path, output, words
):
    (tmp_path / "a-file").write_text("not a folder")
    output = output.format(tmp=tmp_path)
    job = jobs.submit({**_one_frame(bear_clip, "x", sam2_checkpoint), "output": output})
    final = jobs.follow(job.id, poll_s=0.2, timeout_s=300)
    assert final.state == "failed", worker.started[0].log()[-3000:]
    assert final.meta.error.kind == "input" and words in final.meta.error.message
    assert (final.meta.progress.frame, final.meta.progress.attempt) == (0, 1)  # never retried
    assert final.meta.progress.total is None  # the video was never opened


def test_a_checkpoint_that_does_not_load_fails_at_frame_zero(worker, jobs, bear_clip, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint" * 100)
    job = jobs.submit(_one_frame(bear_clip, tmp_path / "out", broken))
    final = jobs.follow(job.id, poll_s=0.2, timeout_s=300)
    assert final.state == "failed" and final.meta.error.kind == "input", final.meta.error
    assert str(broken) in final.meta.error.message
    assert (final.meta.progress.frame, final.meta.progress.attempt) == (0, 1)
    assert not (tmp_path / "out").exists()  # no empty folder left behind


def test_a_worker_stopped_by_an_error_exits_non_zero(workers, redis_client):
    """Redis takes the worker's rights away: it cannot go on, and says so with its status."""
    user, password = f"w{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    redis_client.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"],
                             channels=["*"], commands=["+@all"])  # fmt: skip
    try:
        url = workers.redis_url.replace("redis://", f"redis://{user}:{password}@")
        worker = workers.start(redis_url=url)
        workers.wait_registered(1)
        redis_client.acl_setuser(user, enabled=True, commands=["-@all"], reset_channels=False)
        assert worker.process.wait(timeout=120) == 1, worker.log()[-3000:]
        assert "stopped by an error" in worker.log() or "Redis failed" in worker.log()
    finally:
        redis_client.acl_deluser(user)
