"""Two workers, ten jobs: each done exactly once; ``rq info`` sees the queue and workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rq.job import Job
from rq.serializers import JSONSerializer

from configs.settings import load_settings
from jobs.queue import JobQueue
from jobs.storage import open_location, read_manifest
from tests.jobs.conftest import ONE_FRAME_PROMPTS, spec_dict


def test_two_workers_share_ten_jobs_each_done_once(workers, bear_clip, sam2_checkpoint, tmp_path):
    first, second = workers.start(threads=1), workers.start(threads=1)
    workers.wait_registered(2)
    jobs = JobQueue.connect(load_settings().queue, workers.redis_url, workers.queue)
    outputs = [tmp_path / f"out-{i}" for i in range(10)]
    ids = [
        jobs.submit(
            spec_dict(bear_clip, out, sam2_checkpoint, max_frames=1, outputs=["tracks"],
                      prompts=ONE_FRAME_PROMPTS)
        ).id
        for out in outputs
    ]  # fmt: skip

    info = subprocess.run(
        [str(Path(sys.executable).parent / "rq"), "info", "--url", workers.redis_url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert info.returncode == 0, info.stderr
    assert workers.queue in info.stdout
    assert first.name in info.stdout and second.name in info.stdout

    finals = [jobs.follow(job_id, poll_s=0.2, timeout_s=300) for job_id in ids]
    assert [f.state for f in finals] == ["finished"] * 10
    assert {f.worker for f in finals} == {first.name, second.name}
    for worker in (first, second):  # no fork per job: each process loaded the model once
        assert worker.log().count("loaded sam2.1-tiny from") == 1, worker.log()[-2000:]
    for job_id, out, final in zip(ids, outputs, finals, strict=True):
        job = Job.fetch(job_id, connection=jobs.redis, serializer=JSONSerializer)
        assert len(job.results()) == 1  # one execution, one result
        assert final.meta.progress.attempt == 1
        manifest = read_manifest(open_location(str(out)))
        assert manifest is not None and manifest.job_id == job_id
        assert [f.name for f in manifest.files] == ["tracks.json"]
