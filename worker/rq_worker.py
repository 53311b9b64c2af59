"""The queue worker: RQ's in-process ``SimpleWorker``, made safe and long-job aware.

* No fork per job: jobs run in the worker process, so a model loaded by one job (the
  ``worker.sam2_model`` cache) and its CUDA context serve every later job.
* JSON only: jobs are read with RQ's ``JSONSerializer`` and :class:`SafeJob` runs no function but
  ``jobs.queue.JOB_FUNCTION`` and no callbacks or webhooks, so nothing read from Redis can run
  code. A pickled or otherwise unreadable payload, a foreign function, or a spec that fails
  validation fails that job at once with a reason; the worker goes on with the next.
* Alive through long jobs: ``SimpleWorker`` heartbeats only between jobs and registers a running
  job for its whole timeout; here a thread heartbeats every ``heartbeat_interval_s`` during the
  job and registers it for only ``abandoned_after_s``. If the worker dies (SIGKILL, OOM, lost
  machine) the heartbeats stop, and the next maintenance pass of any live worker (every
  ``maintenance_interval_s``; ``StartedJobRegistry.cleanup``) requeues the job, which resumes
  from its last checkpoint. A killed job is back on the queue ``abandoned_after_s`` to
  ``abandoned_after_s + maintenance_interval_s + (worker_ttl_s - 15)`` seconds after its last
  heartbeat (30 to about 60 s with the defaults).
* Failures are classified (:func:`classify`): bad input, rejected payloads, cancellation and
  timeouts are final; transient ones are retried (``Retry(max=max_retries)``) after a backoff.
* A warm shutdown (SIGTERM, Ctrl+C) stops the running job at the next frame and requeues it at
  once; it resumes from its last checkpoint on whichever worker takes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from rq.exceptions import AbandonedJobError, DeserializationError
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException
from rq.utils import import_attribute
from rq.worker import SimpleWorker, WorkerStatus

from configs.settings import QueueSettings
from jobs.errors import InputError, TransientError
from jobs.queue import JOB_FUNCTION, FailureKind, JobFailure, read_meta, write_meta
from jobs.redis_keys import job_cancel_key

log = logging.getLogger("streamseg.worker")
FINAL = frozenset({"input", "rejected", "cancelled", "timeout"})


class RejectedJob(InputError):
    """The payload is not a streamseg job (a foreign function, callbacks, a bound method)."""


class SafeJob(Job):
    """A job that can only ever call ``JOB_FUNCTION``: never a callback, never a webhook."""

    allowed_functions = frozenset({JOB_FUNCTION})

    @property
    def func(self):
        name = self.func_name  # DeserializationError for anything that is not our JSON
        if name not in self.allowed_functions or self.instance is not None:
            raise RejectedJob(f"refusing to run {name!r}: only {JOB_FUNCTION} jobs are served")
        if len(self.args) != 1 or not isinstance(self.args[0], dict) or self.kwargs:
            raise RejectedJob(f"{JOB_FUNCTION} takes one argument, the job spec")
        return import_attribute(name)

    @property
    def success_callback(self):
        return None

    @property
    def failure_callback(self):
        return None

    @property
    def stopped_callback(self):
        return None

    def send_webhooks(self, *args, **kwargs) -> None:
        return None


def classify(error: BaseException | None) -> JobFailure:
    """What kind of failure ``error`` is, and one line about it."""
    from worker.job_runner import JobTimedOut, WorkerStopping
    from worker.pipeline import Cancelled

    text = " ".join(str(error).split()) if error is not None else ""
    kinds: list[tuple[type | tuple[type, ...], FailureKind, str]] = [
        (Cancelled, "cancelled", text or "cancelled"),
        (DeserializationError, "rejected", "payload is not JSON (pickled?): rejected"),
        (RejectedJob, "rejected", text),
        ((JobTimedOut, JobTimeoutException), "timeout", text or "timed out"),
        (InputError, "input", text),
        (AbandonedJobError, "lost", "the worker running it stopped heartbeating"),
        (WorkerStopping, "interrupted", text),
        ((TransientError, OSError, TimeoutError), "transient", text),
    ]
    for types, kind, message in kinds:
        if isinstance(error, types):
            return JobFailure(kind=kind, message=message or type(error).__name__)
    return JobFailure(kind="internal", message=f"{type(error).__name__}: {text}")


class StreamsegWorker(SimpleWorker):
    """See the module docstring."""

    job_class = SafeJob

    def __init__(self, queues, connection: Redis, settings: QueueSettings, **kwargs) -> None:
        super().__init__(
            queues,
            connection=connection,
            serializer=JSONSerializer,
            worker_ttl=settings.worker_ttl_s,
            maintenance_interval=settings.maintenance_interval_s,
            job_monitoring_interval=max(1, round(settings.heartbeat_interval_s)),
            exception_handlers=[self._record_failure],
            **kwargs,
        )
        self.settings = settings

    def handle_warm_shutdown_request(self) -> None:
        """Ask the running job to stop between frames and go back on the queue."""
        from worker.job_runner import shutdown_requested

        super().handle_warm_shutdown_request()
        shutdown_requested.set()

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """How long a running job stays registered without a heartbeat."""
        return self.settings.abandoned_after_s

    def execute_job(self, job: Job, queue) -> None:
        execution = self.prepare_execution(job)
        with self._heartbeats(job, execution):
            self.perform_job(job, queue, execution)
        self.set_state(WorkerStatus.IDLE)

    @contextmanager
    def _heartbeats(self, job: Job, execution) -> Iterator[None]:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.settings.heartbeat_interval_s):
                try:
                    self.maintain_heartbeats(job, execution)
                except Exception as error:  # Redis away: the next beat tries again
                    log.warning("heartbeat for job %s failed: %s", job.id, error)

        thread = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _record_failure(self, job: Job, exc_type, exc_value, traceback) -> bool:
        """Exception handler: reason into meta, no retry of final failures, backoff."""
        failure = classify(exc_value)
        if "unserialized" in (job.meta or {}):
            job.meta = {}  # a foreign payload's unreadable meta is replaced, not kept
        meta = read_meta(job)
        if failure.kind in FINAL:
            job.retries_left = 0
        if failure.kind == "cancelled":
            self._stopped_job_id = job.id  # RQ then marks the job STOPPED, not FAILED
        update: dict = {"error": failure}
        if failure.kind == "transient":
            backoff = self.settings.retry_backoff_s
            delay = backoff[min(meta.transient_failures, len(backoff) - 1)] if backoff else 0.0
            update |= {
                "transient_failures": meta.transient_failures + 1,
                "retry_after": time.time() + delay,
            }
        try:  # Redis may be away: the failure itself is still handled by RQ
            write_meta(job, meta.model_copy(update=update))
            if failure.kind == "cancelled":
                job.connection.delete(job_cancel_key(job.id))
        except Exception as error:
            log.warning("could not record the failure of job %s: %s", job.id, error)
        log.warning("job %s failed (%s): %s", job.id, failure.kind, failure.message)
        return True
