"""Queue benchmarks: submit latency and SIGKILL-to-resume time, side by side with a baseline.

    python tests/benchmarks/bench_queue.py submit  [--baseline DIR] [--runs 10]
    python tests/benchmarks/bench_queue.py requeue [--baseline DIR] [--runs 2]

``--baseline DIR``: another checkout of streamseg (e.g. ``git worktree add /tmp/base e47e1d1``)
measured in the same run, interleaved with this one. Everything runs against a private
redis-server; workers are real ``streamseg worker`` processes with the test suite's fast
settings (heartbeat 0.5 s, abandoned after 5 s, maintenance every 1 s).

submit: wall time of ``streamseg submit clip.mp4 --out ... --point ...`` as a user runs it
(a fresh interpreter each time, job queued in Redis when it returns).

requeue: a job (sam2.1-tiny, random weights, 256 px, DAVIS bear, checkpoint every frame) runs
on a worker; at its first checkpoint the worker running it is SIGKILLed. ``requeued``: seconds
until the job is back on the queue (its ``enqueued_at``); ``resumed``: until the next attempt
tracked its first frame after the checkpoint. Scenarios: ``fresh`` (a new worker is started
right after the kill), ``second`` (two workers were idle when the job came; the other one
takes it over), ``supervised`` (the worker is the child of ``streamseg worker --devices
cpu``, restarted by it; this checkout only).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DAVIS = ROOT.parent / "shared" / "data" / "davis2016-train" / "JPEGImages" / "bear"
FAST = {"STREAMSEG_HEARTBEAT_S": "0.5", "STREAMSEG_ABANDONED_AFTER_S": "5",
        "STREAMSEG_MAINTENANCE_S": "1", "STREAMSEG_WORKER_TTL_S": "16",
        "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}  # fmt: skip


def _env(repo: Path, work: Path) -> dict:
    return {**os.environ, **FAST, "PYTHONPATH": str(repo), "STREAMSEG_WORK_DIR": str(work)}


def _streamseg(repo: Path, work: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "worker.cli", *args], cwd=repo,
                            env=_env(repo, work), **popen)  # fmt: skip


# ----- submit ------------------------------------------------------------------------------
def bench_submit(repos: dict[str, Path], runs: int, url: str, tmp: Path) -> None:
    video = tmp / "clip.mp4"
    video.write_bytes(b"not opened by submit")
    times: dict[str, list[float]] = {name: [] for name in repos}
    cpu: dict[str, list[float]] = {name: [] for name in repos}
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for _run in range(runs):
        for name, repo in repos.items():  # interleaved
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            start = time.perf_counter()
            process = _streamseg(repo, tmp, "submit", str(video), "--out", str(tmp / "o"),
                                 "--point", "1:10,20", "--redis", url, "--queue", queue,
                                 stdout=subprocess.DEVNULL)  # fmt: skip
            _, status, usage = os.wait4(process.pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            times[name].append(time.perf_counter() - start)
            cpu[name].append(usage.ru_utime + usage.ru_stime)
    for name, values in times.items():
        print(f"submit {name:9s} wall median {statistics.median(values):6.2f} s "
              f"(min {min(values):5.2f}, max {max(values):5.2f}); CPU (user+sys) median "
              f"{statistics.median(cpu[name]):5.2f} s  (n={len(values)})")  # fmt: skip
    if len(times) == 2:
        (a, va), (b, vb) = times.items()
        print(
            f"wall ratio {b}/{a}: {statistics.median(vb) / statistics.median(va):.1f}x; "
            f"CPU ratio {statistics.median(cpu[b]) / statistics.median(cpu[a]):.1f}x"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


# ----- requeue -----------------------------------------------------------------------------
def requeue_once(repo: Path, scenario: str, url: str, checkpoint: Path, clip: Path,
                 tmp: Path) -> tuple[float, float]:  # fmt: skip
    from configs.settings import QueueSettings
    from jobs.queue import JobQueue
    from tests.jobs.conftest import registered_workers, wait_for, worker_pid

    queue = f"bench-{uuid.uuid4().hex[:6]}"
    common = ["worker", "--redis", url, "--queue", queue]
    logs = open(tmp / f"{queue}.log", "wb")
    started: list[subprocess.Popen] = []

    def worker(name: str, *extra: str) -> None:
        started.append(_streamseg(repo, tmp, *common, "--name", f"{queue}-{name}", *extra,
                                  stdout=logs, stderr=subprocess.STDOUT))  # fmt: skip

    try:
        worker("a", *(["--devices", "cpu"] if scenario == "supervised" else []))
        first = f"{queue}-a.0.1" if scenario == "supervised" else f"{queue}-a"
        wait_for(lambda: first in registered_workers(url, queue), 300, "worker a", 0.05)
        if scenario == "second":
            worker("b")
            wait_for(lambda: f"{queue}-b" in registered_workers(url, queue), 300, "b", 0.05)
        spec = {"source": str(clip), "output": str(tmp / queue), "model": "sam2.1-tiny",
                "checkpoint": str(checkpoint), "image_size": 256, "checkpoint_every": 1,
                "outputs": ["tracks"],
                "prompts": [{"object": 1, "points": [[420.0, 260.0]], "labels": [1]}]}  # fmt: skip
        jobs = JobQueue.connect(QueueSettings(), url, queue)
        job = jobs.submit(spec)
        wait_for(lambda: jobs.get(job.id).meta.progress.checkpoint, 600, "a checkpoint", 0.05)
        # the worker running the job: with two idle workers either may have taken it (killing
        # "a" regardless once hit the idle one, and the bench waited 600 s for a requeue)
        os.kill(worker_pid(url, jobs.get(job.id).worker), signal.SIGKILL)
        killed = time.time()
        if scenario == "fresh":
            worker("c")
        view = wait_for(lambda: (v := jobs.get(job.id)).meta.progress.attempt == 2 and v, 600,
                        "attempt 2", 0.05)  # fmt: skip
        requeued = view.enqueued_at.timestamp() - killed
        wait_for(lambda: (p := jobs.get(job.id).meta.progress).resumed_from is not None
                 and p.frame > p.resumed_from, 600, "a resumed frame", 0.02)  # fmt: skip
        return requeued, time.time() - killed
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        logs.close()


def bench_requeue(repos: dict[str, Path], runs: int, url: str, tmp: Path) -> None:
    from configs.models import get_model_spec
    from tests.conftest import frames_folder
    from tests.support.random_checkpoint import make_random_checkpoint

    checkpoint = make_random_checkpoint(get_model_spec("sam2.1-tiny"), tmp / "tiny.pt", seed=0)
    clip = frames_folder(tmp / "bear", DAVIS, 0, 40)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    plan = [(n, s) for s in ("fresh", "second", "supervised") for n in repos
            if s != "supervised" or n == "this"]  # fmt: skip
    for run in range(runs):
        for name, scenario in plan:  # interleaved
            value = requeue_once(repos[name], scenario, url, checkpoint, clip, tmp)
            results.setdefault((name, scenario), []).append(value)
            print(f"  run {run}: {name} {scenario}: requeued {value[0]:.1f} s, "
                  f"resumed {value[1]:.1f} s", flush=True)  # fmt: skip
    for (name, scenario), values in results.items():
        requeued = statistics.median(v[0] for v in values)
        resumed = statistics.median(v[1] for v in values)
        print(f"requeue {name:9s} {scenario:10s} median requeued {requeued:5.1f} s  "
              f"resumed {resumed:5.1f} s  (n={len(values)})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("submit", "requeue"))
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    from tests.redis_support import redis_server

    repos = {"this": ROOT} | ({"baseline": args.baseline} if args.baseline else {})
    with tempfile.TemporaryDirectory() as folder, redis_server(Path(folder)) as url:
        tmp = Path(folder)
        if args.what == "submit":
            bench_submit(repos, args.runs or 10, url, tmp)
        else:
            bench_requeue(repos, args.runs or 2, url, tmp)


if __name__ == "__main__":
    main()
