"""``streamseg worker --devices cuda:0,cuda:1 | all | cpu,cpu``: one worker process per device.

Each child is a plain ``streamseg worker --device DEV`` process, so each has its own model cache
and CUDA context and serves jobs exactly as a lone worker does. The supervisor:

* starts one child per listed device (``all``: every visible GPU, or one CPU worker without);
* restarts a child that dies (a signal or a non-zero exit) under a new name, right away if it
  had been running a while, after a growing pause (1, 2, 4 ... 30 s) if it keeps dying young;
  first it marks the dead child's running job abandoned, so the restarted child's first
  maintenance pass requeues it at once instead of after ``abandoned_after_s``;
* leaves a child that exited 0 (``--burst``, ``--max-jobs``) stopped, and exits once all are;
* on SIGTERM or SIGINT asks every child for a warm shutdown (each requeues its job, spending
  no retry), waits up to ``stop_timeout_s``, then SIGKILLs what is left and requeues its job.

Children run in their own session (a terminal's Ctrl+C reaches only the supervisor, which
forwards one SIGTERM: a second one within RQ's grace would be a cold shutdown) and get SIGTERM
if the supervisor itself dies (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from rq import Queue, Worker
from rq.serializers import JSONSerializer

from configs.errors import InputError
from jobs.queue import connect_redis
from worker.runtimes.queue.hygiene import expire_jobs_of

log = logging.getLogger("streamseg.supervisor")
_PR_SET_PDEATHSIG = 1
_RAN_LONG_ENOUGH_S = 30.0  # a child that ran this long is restarted without a pause
_MAX_PAUSE_S = 30.0


def parse_devices(text: str) -> list[str]:
    """``cuda:0,cuda:1`` / ``cpu,cpu`` / ``all`` -> the device of each child."""
    if text.strip() == "all":
        return _all_devices()
    devices = [part.strip() for part in text.split(",")]
    if not devices or any(not device for device in devices):
        raise InputError(f"--devices {text!r}: give a comma-separated list such as cuda:0,cuda:1")
    for device in dict.fromkeys(devices):
        if device != "cpu":
            from worker.engines.registry import check_device

            check_device(device)  # ModelLoadError (one line) for a device this host lacks
    return devices


def _all_devices() -> list[str]:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{index}" for index in range(count)] or ["cpu"]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    """One device's worker process; ``generation`` counts its restarts."""

    slot: int
    device: str
    process: subprocess.Popen | None = None
    name: str = ""
    generation: int = 0
    started_at: float = 0.0
    quick_deaths: int = 0
    start_after: float = 0.0
    done: bool = False


@dataclass
class Supervisor:
    """See the module docstring. ``worker_args``: the flags every child gets."""

    devices: list[str]
    worker_args: list[str]
    name_prefix: str
    redis_url: str
    queues: list[str]
    stop_timeout_s: float
    poll_s: float = 0.2
    children: list[Child] = field(default_factory=list)
    _stopping: bool = False

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        self.children = [Child(slot, device) for slot, device in enumerate(self.devices)]
        log.info("supervising %d workers on %s", len(self.children), ", ".join(self.devices))
        try:
            while not self._stopping and not all(child.done for child in self.children):
                for child in self.children:
                    self._tend(child)
                time.sleep(self.poll_s)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _request_stop(self, signum, frame) -> None:
        if not self._stopping:
            log.info("%s: stopping every worker (warm shutdown)", signal.Signals(signum).name)
        self._stopping = True

    def _tend(self, child: Child) -> None:
        if child.done:
            return
        if child.process is None:
            if time.monotonic() >= child.start_after:
                self._start(child)
            return
        code = child.process.poll()
        if code is None:
            return
        child.process = None
        if code == 0:
            log.info("worker %s (%s) finished", child.name, child.device)
            child.done = True
            return
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        ran = time.monotonic() - child.started_at
        child.quick_deaths = 0 if ran >= _RAN_LONG_ENOUGH_S else child.quick_deaths + 1
        pause = (
            0.0 if child.quick_deaths == 0 else min(_MAX_PAUSE_S, 2.0 ** (child.quick_deaths - 1))
        )
        log.warning("worker %s (%s) died (%s) after %.0f s; restarting in %.0f s",
                    child.name, child.device, how, ran, pause)  # fmt: skip
        self._requeue_jobs_of(child.name)
        child.start_after = time.monotonic() + pause

    def _start(self, child: Child) -> None:
        child.generation += 1
        child.name = f"{self.name_prefix}.{child.slot}.{child.generation}"
        command = [sys.executable, "-m", "worker.cli", "worker", *self.worker_args,
                   "--name", child.name, "--device", child.device]  # fmt: skip
        child.process = subprocess.Popen(
            command, start_new_session=True, preexec_fn=_die_with_parent
        )
        child.started_at = time.monotonic()
        log.info("started worker %s on %s (pid %d)", child.name, child.device, child.process.pid)

    def _requeue_jobs_of(self, worker_name: str) -> None:
        """The child is dead for sure: its job need not wait out ``abandoned_after_s``, and
        its registration is removed."""
        try:
            with connect_redis(self.redis_url) as redis:
                for name in self.queues:
                    queue = Queue(name, connection=redis, serializer=JSONSerializer)
                    for job_id in expire_jobs_of(queue, worker_name):
                        log.info("job %s of dead worker %s marked abandoned", job_id, worker_name)
                dead = Worker.find_by_key(f"{Worker.redis_worker_namespace_prefix}{worker_name}",
                                          connection=redis)  # fmt: skip
                if dead is not None:
                    dead.register_death()  # gone from `rq info` now, not when its TTL ends
        except Exception as error:  # Redis away: the job comes back after abandoned_after_s
            log.warning("could not mark the jobs of %s abandoned: %s", worker_name, error)

    def _stop_all(self) -> None:
        running = [child for child in self.children if child.process is not None]
        for child in running:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for child in running:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %s did not stop within %.0f s: killing it",
                            child.name, self.stop_timeout_s)  # fmt: skip
                child.process.kill()
                child.process.wait()
                self._requeue_jobs_of(child.name)
        log.info("all workers stopped")
