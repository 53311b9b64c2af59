"""The queue worker: RQ's in-process ``SimpleWorker``, made safe and long-job aware.

* No fork per job: jobs run in the worker process, so a model loaded by one job (the
  ``worker.engines.sam2video.model`` cache) and its CUDA context serve every later job.
* JSON only: jobs are read with RQ's ``JSONSerializer`` and :class:`SafeJob` runs no function but
  ``jobs.queue.JOB_FUNCTION``. A job that asks for anything else (callbacks, webhooks, depends on
  or is depended on by other jobs, repeats) is refused, as is a pickled or otherwise unreadable
  payload, a foreign function, or a spec that fails validation: that job fails at once with its
  reason; the worker goes on with the next.
* Poison entries: an entry RQ cannot read (a malformed id on the queue, a job hash with garbage
  fields, a malformed registry entry) is moved to the queue's dead-letter list with its reason
  (``worker.runtimes.queue.hygiene``) and the worker goes on; the maintenance pass never quits the
  worker and never leaves its lock behind. A worker that stops without being asked to (an
  error) exits non-zero (:meth:`StreamsegWorker.stopped_cleanly`), so supervisors restart it.
* Alive through long jobs: ``SimpleWorker`` heartbeats only between jobs and registers a running
  job for its whole timeout; here a thread heartbeats every ``heartbeat_interval_s`` during the
  job, registers it for only ``abandoned_after_s``, and keeps running maintenance passes, so a
  busy fleet still requeues the jobs of dead workers. If the worker dies (SIGKILL, OOM, lost
  machine) the heartbeats stop and the next maintenance pass of any live worker (every
  ``maintenance_interval_s``, busy or idle; ``StartedJobRegistry.cleanup``) requeues the job,
  which resumes from its last checkpoint: ``abandoned_after_s`` to ``abandoned_after_s +
  maintenance_interval_s`` after its last heartbeat. ``streamseg worker --devices`` requeues the
  job of a child it saw die at once (``worker.runtimes.queue.supervisor``).
* Failures are classified (:func:`classify`): bad input, rejected payloads, cancellation and
  timeouts are final; transient ones and lost workers are retried (``Retry(max=max_retries)``),
  transient ones after a backoff.
* A warm shutdown (SIGTERM, Ctrl+C) stops the running job at the next frame and requeues it at
  the front of the queue without spending a retry (``meta.interruptions`` counts them); it
  resumes from its last checkpoint on whichever worker takes it.
* Fenced: an attempt that a newer one superseded (``worker.runtimes.queue.fence``) ends
  without touching the job (no status, meta, retry or result), whether it raised
  ``Superseded`` or failed or finished meanwhile; only its own execution is removed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import worker_registration
from rq.exceptions import AbandonedJobError, DeserializationError, StopRequested
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry, clean_registries
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException
from rq.utils import import_attribute, now
from rq.worker import SimpleWorker, WorkerStatus

from configs.errors import InputError, TransientError
from configs.settings import QueueSettings
from jobs.dead_letter import DeadLetter, move_aside
from jobs.queue import JOB_FUNCTION, FailureKind, JobFailure, read_meta, write_meta
from jobs.redis_keys import job_cancel_key
from worker.runtimes.queue.fence import Superseded
from worker.runtimes.queue.hygiene import move_list_entry, sweep_queue

log = logging.getLogger("streamseg.worker")
FINAL = frozenset({"input", "rejected", "cancelled", "timeout"})
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)


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
        refusal = self.refusal()
        if refusal is not None:
            raise RejectedJob(refusal)
        return import_attribute(name)

    def refusal(self) -> str | None:
        """Why this job asks for more than the job function (None: it does not)."""
        callbacks = {
            "on_success": self._success_callback_name,
            "on_failure": self._failure_callback_name,
            "on_stopped": self._stopped_callback_name,
        }
        named = [f"{kind}={name}" for kind, name in callbacks.items() if name]
        if named:
            return f"refusing a job with callbacks ({', '.join(named)}): streamseg runs none"
        if self.webhooks:
            return "refusing a job with webhooks: streamseg sends none"
        if self._dependency_ids:
            return f"refusing a job that depends on other jobs ({', '.join(self._dependency_ids)})"
        if self.connection.scard(self.dependents_key):
            return "refusing a job other jobs depend on: streamseg jobs have no dependents"
        if getattr(self, "repeats_left", None):
            return "refusing a repeating job: submit each run with streamseg submit"
        return None

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
    text = " ".join(str(error).split()) if error is not None else ""
    if isinstance(error, AbandonedJobError):  # maintenance: no import of the job's modules
        return JobFailure(kind="lost", message="the worker running it stopped heartbeating")
    from worker.pipeline.segment import Cancelled
    from worker.runtimes.queue.job_runner import JobTimedOut, WorkerStopping

    kinds: list[tuple[type | tuple[type, ...], FailureKind, str]] = [
        (Cancelled, "cancelled", text or "cancelled"),
        (DeserializationError, "rejected", "payload is not JSON (pickled?): rejected"),
        (RejectedJob, "rejected", text),
        ((JobTimedOut, JobTimeoutException), "timeout", text or "timed out"),
        (InputError, "input", text),
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
        self.settings = settings
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
        self._queues_empty = False
        self._jobs_done = 0
        self._maintenance = threading.Lock()
        # The queue's maintenance lock, if its holder dies mid-pass, stalls every other worker's
        # requeueing until it expires (RQ's lasts 899 s). It lasts abandoned-after: a pass as
        # long as that would already stall this worker's own job heartbeats (the heartbeat
        # thread runs it), so no pass is cut short, and a dead holder delays the requeue of its
        # job by no more than the wait for its heartbeats to run out, which overlaps it.
        self._lock_s = max(1, settings.abandoned_after_s)

    # ----- how the worker stopped ----------------------------------------------------------
    def stopped_cleanly(self, burst: bool, max_jobs: int | None) -> bool:
        """After ``work()``: was it asked to stop, or done? (False: an error stopped it.)"""
        if self._shutdown_requested_date is not None:
            return True
        if burst and self._queues_empty:
            return True
        return max_jobs is not None and self._jobs_done >= max_jobs

    @property
    def dequeue_timeout(self) -> int:
        """Idle workers wake at least every maintenance interval (RQ: worker_ttl - 15 s)."""
        return max(1, min(self.worker_ttl - 15, self.maintenance_interval))

    # ----- dequeue: poison entries are moved aside -----------------------------------------
    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        unexplained = 0
        while True:
            try:
                result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except (StopRequested, SystemExit, *REDIS_ERRORS):
                raise
            except Exception as error:
                if self._move_aside_dequeued(error) or unexplained < 3:
                    unexplained += not getattr(error, "job_id", None)
                    continue
                raise
            if result is None:
                self._queues_empty = True
            return result

    def _move_aside_dequeued(self, error: Exception) -> bool:
        """An entry RQ popped and could not read: out of the intermediate list, recorded."""
        entry, queue = getattr(error, "job_id", None), getattr(error, "queue", None)
        reason = f"cannot be read by RQ: {type(error).__name__}: {error}"
        if entry is None or queue is None:
            log.error("dequeue failed (%s); checking the queues' keys", reason)
            return sum(sweep_queue(queue, self.name) for queue in self.queues) > 0
        key = queue.intermediate_queue_key
        if self.connection.lpos(key, entry) is not None:
            move_list_entry(queue, key, entry, reason, self.name)
        else:  # popped for good (several queues: LPOP): only the record is left to write
            letter = DeadLetter(entry=entry, source=queue.key, reason=reason, worker=self.name)
            move_aside(self.connection, queue.name, letter, lambda pipe: None)
            log.error("dropped %r from %s: %s", entry, queue.key, reason)
        return True

    # ----- maintenance: never quits the worker ---------------------------------------------
    def run_maintenance_tasks(self) -> None:
        self.clean_registries()
        try:
            self.clean_group_registries()
        except REDIS_ERRORS:
            raise
        except Exception as error:
            log.error("maintenance of group registries failed: %s", error)

    def clean_registries(self) -> None:
        """RQ's maintenance, each step on its own, after moving poison entries aside."""
        with self._maintenance:  # the heartbeat thread runs it too, during jobs
            for queue in self.queues:
                lock = queue.registry_cleaning_key
                if not self.connection.set(lock, self.name, nx=True, ex=self._lock_s):
                    continue
                try:
                    self._clean_queue(queue)
                finally:
                    if self.connection.get(lock) == self.name.encode():
                        self.connection.delete(lock)
            self.last_cleaned_at = now()

    def _clean_queue(self, queue) -> None:
        steps = (
            ("poison entries", lambda: sweep_queue(queue, self.name)),
            ("registries", lambda: clean_registries(queue, self._exc_handlers)),
            ("worker registry", lambda: worker_registration.clean_worker_registry(queue)),
            ("intermediate queue", lambda: queue.intermediate_queue.cleanup(self, queue)),
        )
        for what, step in steps:
            try:
                step()
            except REDIS_ERRORS:
                raise
            except Exception as error:
                log.error("maintenance of %s of queue %s failed: %s", what, queue.name, error)

    # ----- running a job ---------------------------------------------------------------------
    def handle_warm_shutdown_request(self) -> None:
        """Ask the running job to stop between frames and go back on the queue."""
        from worker.runtimes.queue.job_runner import shutdown_requested

        super().handle_warm_shutdown_request()
        shutdown_requested.set()

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """How long a running job stays registered without a heartbeat."""
        return self.settings.abandoned_after_s

    def execute_job(self, job: Job, queue) -> None:
        self._jobs_done += 1
        try:
            execution = self.prepare_execution(job)
            with self._heartbeats(job, execution):
                self.perform_job(job, queue, execution)
        except (StopRequested, SystemExit, *REDIS_ERRORS):
            raise
        except Exception as error:  # RQ itself failed on this job (garbage fields)
            self._move_aside_job(job, queue, error)
        self.set_state(WorkerStatus.IDLE)

    def _finalize_failure(self, job: Job, queue, execution, exc_info) -> None:
        if isinstance(exc_info[1], Superseded) or self._superseded(job):
            self._end_superseded(job, execution, exc_info[1])
        else:
            super()._finalize_failure(job, queue, execution, exc_info)

    def _finalize_success(self, job: Job, queue, execution, return_value) -> None:
        if self._superseded(job):
            self._end_superseded(job, execution, None)
        else:
            super()._finalize_success(job, queue, execution, return_value)

    @staticmethod
    def _superseded(job: Job) -> bool:
        fence = getattr(job, "attempt_fence", None)  # taken by the job runner
        try:
            return fence is not None and not fence.owns()
        except REDIS_ERRORS:
            return False  # cannot tell: RQ's own handling, as before fencing

    def _end_superseded(self, job: Job, execution, error: BaseException | None) -> None:
        """A newer attempt owns the job: remove this execution only, write nothing else."""
        with self.connection.pipeline() as pipe:
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            pipe.execute()
        log.warning("job %s: this attempt was superseded, ending it without writes (%s)",
                    job.id, error or "finished after a newer attempt started")  # fmt: skip

    def _move_aside_job(self, job: Job, queue, error: Exception) -> None:
        reason = f"RQ failed on it: {type(error).__name__}: {error}"
        letter = DeadLetter(entry=job.id, source=queue.key, reason=reason, worker=self.name)
        started = StartedJobRegistry(queue.name, connection=self.connection).key

        def remove(pipe) -> None:
            pipe.lrem(queue.intermediate_queue_key, 0, job.id)
            for entry in self.connection.zrange(started, 0, -1):
                if entry.decode(errors="replace").split(":")[0] == job.id:
                    pipe.zrem(started, entry)
            pipe.hset(job.key, "status", JobStatus.FAILED.value)

        log.error("job %s moved aside: %s", job.id, reason)
        move_aside(self.connection, queue.name, letter, remove)

    @contextmanager
    def _heartbeats(self, job: Job, execution) -> Iterator[None]:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.settings.heartbeat_interval_s):
                try:
                    self.maintain_heartbeats(job, execution)
                    if self.should_run_maintenance_tasks:
                        self.clean_registries()  # requeue dead workers' jobs while busy
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
        """Exception handler: reason into meta, no retry of final failures, backoff, and a
        warm shutdown's requeue that spends no retry."""
        failure = classify(exc_value)
        if "unserialized" in (job.meta or {}):
            job.meta = {}  # a foreign payload's unreadable meta is replaced, not kept
        meta = read_meta(job)
        update: dict = {"error": failure}
        job.enqueue_at_front_on_retry = failure.kind == "interrupted"
        if failure.kind in FINAL:
            job.retries_left = 0
        elif failure.kind == "interrupted":
            job.retries_left = (job.retries_left or 0) + 1  # RQ's requeue takes this one back
            update["interruptions"] = meta.interruptions + 1
        elif failure.kind == "lost":
            update["lost"] = meta.lost + 1
        if failure.kind == "cancelled":
            self._stopped_job_id = job.id  # RQ then marks the job STOPPED, not FAILED
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
