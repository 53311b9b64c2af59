"""Queue fixtures: a real redis-server of our own on a free port, real ``streamseg worker``s.

No fakeredis and no mocks of RQ: every queue test talks to this server through redis-py and
RQ exactly as production does. Workers are separate processes (``python -m worker.cli worker``)
with fast heartbeat settings so a killed worker's job comes back in seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import PROJECT_ROOT, TEST_IMAGE_SIZE, TEST_MODEL, frames_folder
from tests.redis_support import REDIS_SERVER, free_port, redis_server  # noqa: F401
from tests.support.waiting import wait_for  # also imported from here by the queue tests

if TYPE_CHECKING:
    from jobs.queue import JobQueue

# Settings of the test workers (see configs.settings.QueueSettings).
FAST_WORKER_ENV = {
    "STREAMSEG_HEARTBEAT_S": "0.5",
    "STREAMSEG_ABANDONED_AFTER_S": "5",  # above the GIL stalls of a busy 2-core machine
    "STREAMSEG_MAINTENANCE_S": "1",
    "STREAMSEG_WORKER_TTL_S": "16",  # blocks on the queue for at most 1 s between maintenance
}


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server (never port 6379), stopped at the end of the session."""
    if shutil.which("redis-server") is None and not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed")
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_client(redis_url: str):
    from jobs.queue import connect_redis

    client = connect_redis(redis_url)
    yield client
    client.close()


def unique_queue() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


# ----- worker processes --------------------------------------------------------------------


def registered_workers(redis_url: str, queue: str) -> set[str]:
    """Names of the workers registered on ``queue`` now (RQ's worker registry)."""
    from redis import Redis
    from rq import Queue, Worker

    with Redis.from_url(redis_url) as redis:
        return {w.name for w in Worker.all(queue=Queue(queue, connection=redis))}


def worker_pid(redis_url: str, name: str) -> int:
    """The process id worker ``name`` registered (a ``--devices`` child's own)."""
    from redis import Redis
    from rq import Worker

    with Redis.from_url(redis_url) as redis:
        return Worker.find_by_key(f"rq:worker:{name}", connection=redis).pid


@dataclass
class WorkerProcess:
    """One ``streamseg worker`` subprocess; its log is ``log_path``."""

    name: str
    process: subprocess.Popen
    log_path: Path

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as an OOM kill or a lost machine."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown: finishes the current job
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class WorkerFactory:
    redis_url: str
    queue: str
    folder: Path
    started: list[WorkerProcess] = field(default_factory=list)

    def start(self, threads: int = 2, *extra: str, redis_url: str | None = None,
              **env: str) -> WorkerProcess:  # fmt: skip
        """``streamseg worker`` (``extra``: more flags, e.g. ``--devices cpu,cpu``)."""
        name = f"w-{uuid.uuid4().hex[:6]}"
        log_path = self.folder / f"{name}.log"
        environment = {
            **os.environ,
            **FAST_WORKER_ENV,
            "STREAMSEG_WORK_DIR": str(self.folder / "work"),
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            **env,
        }
        command = [sys.executable, "-m", "worker.cli", "worker", "--redis",
                   redis_url or self.redis_url, "--queue", self.queue, "--name", name,
                   *extra]  # fmt: skip
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
            )
        worker = WorkerProcess(name, process, log_path)
        self.started.append(worker)
        return worker

    def registered(self) -> set[str]:
        """Names of the workers registered on this factory's queue now."""
        return registered_workers(self.redis_url, self.queue)

    def wait_registered(self, count: int, timeout: float = 180.0) -> None:
        """Until ``count`` workers listen on the queue (they import torch first: seconds, and
        over a minute at a load of 15 on 2 cores)."""
        from redis import Redis
        from rq import Worker

        with Redis.from_url(self.redis_url) as redis:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                names = {w.name for w in Worker.all(connection=redis)}
                if sum(w.name in names for w in self.started) >= count:
                    return
                for worker in self.started:
                    if worker.process.poll() is not None:
                        raise RuntimeError(f"worker {worker.name} exited:\n{worker.log()}")
                time.sleep(0.2)
        raise TimeoutError("workers did not register:\n" + "\n".join(w.log() for w in self.started))

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()

    def wait_for(self, predicate, timeout: float, what: str, interval: float = 0.1):
        """``wait_for``, and on a timeout the end of every worker's log in the error."""
        try:
            return wait_for(predicate, timeout, what, interval)
        except TimeoutError as error:
            logs = "\n".join(f"--- {w.name}:\n{w.log()[-3000:]}" for w in self.started)
            raise TimeoutError(f"{error}\n{logs}") from None


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(redis_url, unique_queue(), tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def worker(redis_url: str, tmp_path_factory) -> Iterator[WorkerFactory]:
    """One ``streamseg worker`` serving every test of a module (its model stays loaded)."""
    factory = WorkerFactory(redis_url, unique_queue(), tmp_path_factory.mktemp("worker"))
    factory.start()
    factory.wait_registered(1)
    yield factory
    factory.stop_all()


@pytest.fixture
def jobs(worker: WorkerFactory):
    """The client of ``worker``'s queue (``jobs.queue.JobQueue``)."""
    from configs.settings import load_settings
    from jobs.queue import JobQueue

    return JobQueue.connect(load_settings().queue, worker.redis_url, worker.queue)


# ----- inputs and jobs ---------------------------------------------------------------------


BEAR_FRAMES = 6  # CPU tracking at 256 px takes 0.5-2 s a frame (more on a busy machine)


@pytest.fixture(scope="session")
def bear_clip(davis_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``BEAR_FRAMES`` 854x480 DAVIS frames (symlinks)."""
    folder = tmp_path_factory.mktemp("bear") / "bear"
    return frames_folder(folder, davis_root / "JPEGImages" / "bear", 0, BEAR_FRAMES)


BEAR_PROMPTS = ["--point", "1:420,260", "--box", "2:100,80,380,420@2"]


def model_args(checkpoint: Path) -> list[str]:
    return ["--model", TEST_MODEL, "--checkpoint", str(checkpoint),
            "--image-size", str(TEST_IMAGE_SIZE)]  # fmt: skip


ONE_FRAME_PROMPTS = [{"object": 1, "points": [[420.0, 260.0]], "labels": [1]}]


def spec_dict(source: Path | str, output: Path | str, checkpoint: Path, **extra) -> dict:
    """A job spec as JSON, the form it takes on the queue (``BEAR_PROMPTS`` unless given)."""
    return {
        "source": str(source),
        "output": str(output),
        "prompts": [
            {"object": 1, "points": [[420.0, 260.0]], "labels": [1]},
            {"object": 2, "frame": 2, "box": [100.0, 80.0, 380.0, 420.0]},
        ],
        "model": TEST_MODEL,
        "checkpoint": str(checkpoint),
        "image_size": TEST_IMAGE_SIZE,
        **extra,
    }


@pytest.fixture(scope="session")
def reference_run(bear_clip: Path, sam2_checkpoint: Path, tmp_path_factory) -> Path:
    """``streamseg segment`` on ``bear_clip``: the outputs every queue run must reproduce."""
    from worker.cli import main

    out = tmp_path_factory.mktemp("reference")
    argv = ["segment", str(bear_clip), "--out", str(out), "--quiet", *BEAR_PROMPTS]
    assert main(argv + model_args(sam2_checkpoint)) == 0
    return out


def streamseg(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``streamseg ARGS`` as a user runs it: a fresh process, its exit status and output."""
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args], cwd=PROJECT_ROOT, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip


@dataclass
class TwoWorkers:
    """A job with a checkpoint on one of two workers that were both idle when it came."""

    jobs: JobQueue
    job_id: str
    running: WorkerProcess  # the one that took it (either may)
    other: WorkerProcess  # idle


def job_on_one_of_two(
    workers: WorkerFactory, source: Path, out: Path, checkpoint: Path
) -> TwoWorkers:
    """Two workers, then a job (checkpoint every frame), returned at its first checkpoint."""
    from configs.settings import load_settings
    from jobs.queue import JobQueue

    started = {w.name: w for w in (workers.start(), workers.start())}
    workers.wait_registered(2)
    jobs = JobQueue.connect(load_settings().queue, workers.redis_url, workers.queue)
    job = jobs.submit(spec_dict(source, out, checkpoint, checkpoint_every=1))
    workers.wait_for(lambda: jobs.get(job.id).meta.progress.checkpoint, 300, "a checkpoint")
    running = started.pop(jobs.get(job.id).worker)
    (other,) = started.values()
    return TwoWorkers(jobs, job.id, running, other)
