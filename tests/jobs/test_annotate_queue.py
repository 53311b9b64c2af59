"""``streamseg annotate --queue``: one job per video on a real Redis queue, real workers.

The batch client runs in this process (``worker.cli.main``); the jobs run in a
``streamseg worker`` subprocess on the private redis-server of ``tests/jobs/conftest.py``,
with the weights-included ``lite`` engine on 3-frame DAVIS clips. Which jobs were submitted
is read back from the queue's own registries. The user's Ctrl-C is a real SIGINT to a
``streamseg annotate`` subprocess.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, frames_folder
from tests.jobs.conftest import WorkerFactory
from tests.support.cli import box_mask_png, row, run_cli
from tests.support.waiting import signal_when_ready
from worker.runtimes.batch.manifest import OutputRequest, complete_manifest

CLIP = 3  # frames per DAVIS clip
LITE_ARGS = ["--model", "lite", "--image-size", "240"]


def queue_argv(workers: WorkerFactory, root: Path, *extra: str) -> list[object]:
    return [
        "annotate", root / "in", "--masks", root / "masks", "--out", root / "out", "--queue",
        "--redis", workers.redis_url, "--queue-name", workers.queue, "--quiet", *LITE_ARGS,
        *extra,
    ]  # fmt: skip


def submitted(workers: WorkerFactory) -> list[tuple[str, str]]:
    """(video name, job id) of every job ever put on the test queue, in submission order."""
    from configs.settings import load_settings
    from jobs.queue import JobQueue

    jobs = JobQueue.connect(load_settings().queue, workers.redis_url, workers.queue)
    queue = jobs.queue
    ids = set(queue.get_job_ids())
    for registry in (
        queue.started_job_registry, queue.finished_job_registry, queue.failed_job_registry,
        queue.scheduled_job_registry, queue.deferred_job_registry, queue.canceled_job_registry,
    ):  # fmt: skip
        ids.update(registry.get_job_ids())
    views = sorted((jobs.get(job_id) for job_id in ids), key=lambda view: view.enqueued_at)
    jobs.redis.close()
    return [(Path(view.spec.source).name, view.id) for view in views]


def mask_inputs(root: Path, davis_root: Path, names: tuple[str, ...]) -> None:
    """``in/<name>`` (CLIP DAVIS frames) and ``masks/<name>.png`` (its first annotation)."""
    (root / "masks").mkdir(parents=True)
    for name in names:
        frames_folder(root / "in" / name, davis_root / "JPEGImages" / name, 0, CLIP)
        png = davis_root / "Annotations" / name / "00000.png"
        (root / "masks" / f"{name}.png").symlink_to(png)


def test_queue_submits_one_job_per_video_and_exports_the_results(
    workers: WorkerFactory, davis_root: Path, tmp_path: Path, capsys
) -> None:
    mask_inputs(tmp_path, davis_root, ("bear", "boat"))
    frames_folder(tmp_path / "in" / "bad", davis_root / "JPEGImages" / "tennis", 0, CLIP)
    box_mask_png(tmp_path / "masks" / "bad.png", 10, 10)
    worker = workers.start(threads=1)
    workers.wait_registered(1)
    argv = queue_argv(workers, tmp_path, "--export", "davis,mot")

    code, stdout, _ = run_cli(capsys, *argv)
    assert code == 1, worker.log()[-3000:]
    jobs = submitted(workers)
    assert [name for name, _ in jobs] == ["bad", "bear", "boat"]
    job_ids = dict(jobs)
    bad = row(stdout, "bad")
    assert bad[1] == "failed" and f"job {job_ids['bad']}: " in bad[-1]
    assert "mask is 10x10" in bad[-1]
    for name in ("bear", "boat"):
        assert row(stdout, name)[1:4] == ["done", str(CLIP), "1"]
        assert f"job {job_ids[name]}" in row(stdout, name)[-1]
        folder = tmp_path / "out" / name
        assert len(list((folder / "davis").glob("*.png"))) == CLIP
        assert (folder / "mot.txt").read_text().count("\n") == CLIP
        assert complete_manifest(folder, OutputRequest(("tracks", "davis", "mot"), None, "lite"))
        assert (folder / "manifest.json").is_file()  # the job's own, beside the batch's
        assert not (folder / "job.json").exists()

    code, stdout, _ = run_cli(capsys, *argv)
    assert code == 1
    again = submitted(workers)[len(jobs) :]
    assert [name for name, _ in again] == ["bad"]  # the finished videos are skipped
    assert row(stdout, "bear")[1] == "skipped" and row(stdout, "boat")[1] == "skipped"
    assert row(stdout, "bad")[1] == "failed" and f"job {again[0][1]}: " in row(stdout, "bad")[-1]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_queue_follows_a_recorded_job_instead_of_submitting_again(
    workers: WorkerFactory, davis_root: Path, tmp_path: Path, capsys, stop_signal: int
) -> None:
    """Ctrl-C or SIGTERM while the batch follows its job: the job is reported pending (the
    stop is taken between queue calls, never inside one), and the next run collects it."""
    mask_inputs(tmp_path, davis_root, ("bear",))
    argv = [str(arg) for arg in queue_argv(workers, tmp_path)]
    record = tmp_path / "out" / "bear" / "job.json"

    # No worker yet: the job waits on the queue while the batch follows it; then Ctrl-C.
    batch = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", *argv],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = signal_when_ready(  # recorded, then queued: the record is written first
        batch, lambda: record.is_file() and record.read_text() and submitted(workers),
        stop_signal, "the batch to submit its job", ready_s=120, exit_s=60,
    )  # fmt: skip
    assert batch.returncode == 130, stderr
    [(name, job_id)] = submitted(workers)
    assert name == "bear"
    assert row(stdout, "bear")[1] == "pending"
    assert f"job {job_id} left on the queue" in row(stdout, "bear")[-1]
    assert json.loads(record.read_text()) == {"job_id": job_id}

    worker = workers.start(threads=1)
    workers.wait_registered(1)
    code, stdout, _ = run_cli(capsys, *argv)
    assert code == 0, worker.log()[-3000:]
    assert submitted(workers) == [("bear", job_id)]  # the recorded job was collected
    assert row(stdout, "bear")[1:3] == ["done", str(CLIP)] and job_id in row(stdout, "bear")[-1]
    assert not record.exists()
    assert complete_manifest(tmp_path / "out" / "bear", OutputRequest(("tracks",), None, "lite"))


@pytest.mark.parametrize("queued", [False, True], ids=["before-queueing", "after-queueing"])
def test_a_ctrl_c_during_submission_leaves_a_recorded_job(
    workers: WorkerFactory,
    davis_root: Path,
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,
    queued: bool,
) -> None:
    """Ctrl-C (KeyboardInterrupt) arriving while a job is submitted, just before or just after
    the real Redis queue takes it: the job is reported pending and its record kept, and the
    next run collects it (or queues it, if it never got there): nothing runs twice."""
    from jobs.queue import JobQueue

    mask_inputs(tmp_path, davis_root, ("bear",))
    argv = queue_argv(workers, tmp_path)
    real_submit = JobQueue.submit

    def interrupted_submit(self, spec, job_id=None):
        if queued:
            real_submit(self, spec, job_id=job_id)
        raise KeyboardInterrupt

    monkeypatch.setattr(JobQueue, "submit", interrupted_submit)
    code, stdout, _ = run_cli(capsys, *argv)
    monkeypatch.setattr(JobQueue, "submit", real_submit)
    record = tmp_path / "out" / "bear" / "job.json"
    job_id = json.loads(record.read_text())["job_id"]
    assert code == 130 and row(stdout, "bear")[1] == "pending"
    assert f"job {job_id} left on the queue" in row(stdout, "bear")[-1]
    assert submitted(workers) == ([("bear", job_id)] if queued else [])

    workers.start(threads=1)
    workers.wait_registered(1)
    code, stdout, _ = run_cli(capsys, *argv)
    assert code == 0 and row(stdout, "bear")[1] == "done"
    [(name, collected)] = submitted(workers)
    assert name == "bear" and (collected == job_id) == queued
    assert not record.exists()


def test_queue_refuses_auto_and_device(tmp_path: Path, capsys) -> None:
    pytest.importorskip("jobs.queue")
    (tmp_path / "in").mkdir()
    base = ["annotate", tmp_path / "in", "--out", tmp_path / "out", "--queue"]
    code, _, err = run_cli(capsys, *base, "--auto", "2")
    assert code == 2 and "run it without --queue" in err
    code, _, err = run_cli(capsys, *base, "--masks", tmp_path, "--device", "cpu")
    assert code == 2 and "--device is chosen by each worker" in err
