"""Crash-resume: SIGKILL the worker mid-job, start a new one, get the uninterrupted result."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import av

from configs.settings import load_settings
from jobs.queue import JobQueue
from jobs.storage import open_location, read_manifest, verify
from tests.jobs.conftest import BEAR_FRAMES, FAST_WORKER_ENV, spec_dict, wait_for
from worker.job_checkpoint import CHECKPOINT_DIR


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_killed_job_comes_back_and_resumes_exactly(
    workers, bear_clip, sam2_checkpoint, reference_run, tmp_path
):
    first = workers.start()
    workers.wait_registered(1)
    jobs = JobQueue.connect(load_settings().queue, workers.redis_url, workers.queue)
    out = tmp_path / "out"
    job = jobs.submit(spec_dict(bear_clip, out, sam2_checkpoint, checkpoint_every=2))

    wait_for(lambda: jobs.get(job.id).meta.progress.checkpoint == 2, 300, "a checkpoint")
    first.kill()  # mid-frame: frames 0-3 are tracked, the save of frame 2 is complete
    killed_at = datetime.now(timezone.utc)
    assert jobs.get(job.id).state == "started"  # nobody told RQ
    assert (out / CHECKPOINT_DIR / "state.json").exists()
    assert not (out / "manifest.json").exists()

    second = workers.start()
    requeued = wait_for(
        lambda: (view := jobs.get(job.id)).meta.progress.attempt == 2 and view, 120, "a retry"
    )
    back_s = (requeued.enqueued_at.replace(tzinfo=timezone.utc) - killed_at).total_seconds()
    final = jobs.follow(job.id, poll_s=0.2, timeout_s=300)

    assert final.state == "finished", second.log()[-3000:]
    assert final.worker == second.name
    assert final.meta.progress.resumed_from == 2
    assert (out / "tracks.json").read_bytes() == (reference_run / "tracks.json").read_bytes()
    assert _frames(out / "overlay.mp4") == BEAR_FRAMES  # every frame exactly once
    location = open_location(str(out))
    manifest = read_manifest(location)
    assert manifest is not None and manifest.job_id == job.id
    verify(location, manifest)
    assert not (out / CHECKPOINT_DIR).exists()
    abandoned_after = int(FAST_WORKER_ENV["STREAMSEG_ABANDONED_AFTER_S"])
    assert abandoned_after - 1 <= back_s < abandoned_after + 20
    print(f"\nkilled job requeued {back_s:.1f} s after SIGKILL ({time.strftime('%X')})")
