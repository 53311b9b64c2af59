"""Queue jobs end to end on one real worker: results, cancellation, rejected payloads.

One ``streamseg worker`` process serves every test of this module (its model stays loaded
across jobs, as in production); each test submits through the real CLI or API.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from jobs.queue import JOB_FUNCTION, JobQueue
from jobs.storage import MANIFEST_NAME, sha256_file
from tests.jobs.conftest import (
    BEAR_FRAMES,
    BEAR_PROMPTS,
    ONE_FRAME_PROMPTS,
    WorkerFactory,
    model_args,
    spec_dict,
    wait_for,
)
from worker.cli import main as cli


def _queue_flags(worker: WorkerFactory) -> list[str]:
    return ["--redis", worker.redis_url, "--queue", worker.queue]


def test_submit_wait_result_equals_segment(
    worker, jobs, bear_clip, sam2_checkpoint, reference_run, tmp_path, capsys
):
    """submit --wait -> worker -> result, through a Redis connection reset mid-job."""
    job_id = f"e2e-{uuid.uuid4().hex[:8]}"
    killed: list[int] = []
    resetter = threading.Thread(
        target=_reset_connections, args=(worker.redis_url, job_id, killed), daemon=True
    )
    resetter.start()
    out = tmp_path / "out"
    argv = ["submit", str(bear_clip), "--out", str(out), "--wait", "--quiet", "--job-id", job_id]
    status = cli(argv + BEAR_PROMPTS + model_args(sam2_checkpoint) + _queue_flags(worker))
    assert status == 0, worker.started[0].log()[-3000:]
    resetter.join(timeout=10)
    assert killed and killed[0] >= 2  # the worker's connections and ours were reset
    printed = capsys.readouterr().out.split()
    assert printed == [job_id, str(out / "tracks.json"), str(out / "overlay.mp4")]

    # the same bytes as `streamseg segment`, and a manifest (written last) that says so
    for name in ("tracks.json", "overlay.mp4"):
        assert (out / name).read_bytes() == (reference_run / name).read_bytes(), name
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["job_id"] == job_id
    assert {f["name"]: f["sha256"] for f in manifest["files"]} == {
        name: sha256_file(out / name) for name in ("tracks.json", "overlay.mp4")
    }
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "overlay.mp4", "tracks.json"]

    view = jobs.get(job_id)
    assert view.state == "finished"
    assert (view.meta.progress.frame, view.meta.progress.total) == (BEAR_FRAMES, BEAR_FRAMES)
    assert view.meta.progress.attempt == 1  # the connection reset cost no retry
    assert cli(["result", job_id, *_queue_flags(worker)]) == 0
    assert capsys.readouterr().out.split() == printed[1:]


def _reset_connections(redis_url: str, job_id: str, killed: list[int]) -> None:
    """Once the job has tracked two frames, drop every normal client connection."""
    from redis import Redis
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    def tracking() -> bool:
        try:
            job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
        except NoSuchJobError:
            return False
        return (job.meta.get("progress") or {}).get("frame", 0) >= 2

    with Redis.from_url(redis_url) as redis:
        wait_for(tracking, 300, "the job to track")
        killed.append(redis.client_kill_filter(_type="normal", skipme=True))


def test_cancel_queued_and_running_jobs(worker, jobs, bear_clip, sam2_checkpoint, tmp_path, capsys):
    running_out, queued_out = tmp_path / "running", tmp_path / "queued"
    running = jobs.submit(spec_dict(bear_clip, running_out, sam2_checkpoint, checkpoint_every=1))
    queued = jobs.submit(spec_dict(bear_clip, queued_out, sam2_checkpoint))

    assert cli(["cancel", queued.id, *_queue_flags(worker)]) == 0
    assert jobs.get(queued.id).state == "canceled"
    at_cancel = wait_for(
        lambda: jobs.get(running.id).meta.progress.frame >= 1 and jobs.get(running.id),
        timeout=180,
        what="the job to track a frame",
    ).meta.progress.frame
    assert cli(["cancel", running.id, *_queue_flags(worker)]) == 0
    final = jobs.follow(running.id, poll_s=0.1, timeout_s=120)

    assert final.state == "stopped"
    assert final.meta.error is not None and final.meta.error.kind == "cancelled"
    assert final.meta.progress.frame <= at_cancel + 2  # honoured between frames
    assert final.meta.progress.frame < BEAR_FRAMES
    leftovers = sorted(p.name for p in running_out.iterdir()) if running_out.exists() else []
    assert leftovers == []  # no manifest, no outputs, no checkpoint: nothing looks complete
    capsys.readouterr()
    assert cli(["status", running.id, *_queue_flags(worker)]) == 0
    assert "cancelled (cancelled)" in capsys.readouterr().out
    assert cli(["result", running.id, *_queue_flags(worker)]) == 2
    assert "is stopped, no result" in capsys.readouterr().err

    never = jobs.get(queued.id)
    assert never.state == "canceled" and never.started_at is None and not queued_out.exists()


def test_bad_jobs_fail_at_once_and_the_worker_goes_on(
    worker, jobs, redis_url, bear_clip, sam2_checkpoint, tmp_path
):
    from redis import Redis
    from rq import Retry
    from rq.job import Job

    from configs.errors import InputError

    good = spec_dict(
        bear_clip, tmp_path / "good", sam2_checkpoint, max_frames=1, prompts=ONE_FRAME_PROMPTS
    )
    with Redis.from_url(redis_url) as raw:
        pickled = Queue(worker.queue, connection=raw).enqueue_call(JOB_FUNCTION, args=(good,))
        json_queue = Queue(worker.queue, connection=raw, serializer=JSONSerializer)
        foreign = json_queue.enqueue_call("os.getcwd", retry=Retry(max=3))
        no_spec = json_queue.enqueue_call(JOB_FUNCTION, kwargs={"x": 1}, retry=Retry(max=3))
        invalid = json_queue.enqueue_call(
            JOB_FUNCTION, args=({**good, "prompts": [{"object": 1}]},), retry=Retry(max=3)
        )
    (tmp_path / "not-a-video.mp4").write_text("hello")
    unreadable = jobs.submit({**good, "source": str(tmp_path / "not-a-video.mp4")})
    with pytest.raises(InputError, match="labels must be 1"):
        jobs.submit({**good, "prompts": [{"object": 1, "points": [[1, 2]], "labels": [7]}]})
    # the next good job reads and writes through fsspec URLs (an image folder, copied first)
    last = jobs.submit(
        {**good, "source": f"file://{bear_clip}", "output": f"file://{tmp_path}/good",
         "outputs": ["tracks"]}
    )  # fmt: skip

    final = jobs.follow(last.id, poll_s=0.2, timeout_s=180)
    assert final.state == "finished", (final.meta.error, worker.started[0].log()[-3000:])
    assert sorted(p.name for p in (tmp_path / "good").iterdir()) == ["manifest.json", "tracks.json"]
    assert jobs.result(last.id).urls() == [f"file://{tmp_path}/good/tracks.json"]
    expected = {
        pickled.id: ("rejected", "payload is not JSON"),
        foreign.id: ("rejected", "refusing to run 'os.getcwd'"),
        no_spec.id: ("rejected", "takes one argument, the job spec"),
        invalid.id: ("input", "invalid job spec: prompts.0"),
        unreadable.id: ("input", "not-a-video.mp4"),
    }
    for job_id, (kind, words) in expected.items():
        view = jobs.get(job_id)
        assert view.state == "failed", job_id
        assert view.meta.error is not None and view.meta.error.kind == kind
        assert words in view.meta.error.message
        job = Job.fetch(job_id, connection=jobs.redis, serializer=JSONSerializer)
        assert len(job.results()) == 1  # failed once, never retried
    assert jobs.queue.count == 0


def test_unreachable_input_is_retried_with_backoff_then_fails(worker, bear_clip, sam2_checkpoint):
    from configs.settings import QueueSettings
    from tests.jobs.conftest import free_port

    jobs = JobQueue.connect(QueueSettings(max_retries=1), worker.redis_url, worker.queue)
    url = f"http://127.0.0.1:{free_port()}/clip.mp4"  # nobody listens: connection refused
    started = time.monotonic()
    job = jobs.submit(spec_dict(url, "memory://never", sam2_checkpoint))
    final = jobs.follow(job.id, poll_s=0.2, timeout_s=120)

    assert final.state == "failed"
    assert final.meta.error.kind == "transient"
    assert f"cannot reach {url}" in final.meta.error.message
    assert (final.meta.progress.attempt, final.meta.transient_failures) == (2, 2)
    # 2 attempts x 4 storage tries (0.5, 1, 2 s apart) + the 2 s retry backoff
    assert time.monotonic() - started >= 2 * 3.5 + 2.0
