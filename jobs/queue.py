"""Submit, inspect, follow and cancel segmentation jobs on a Redis queue (RQ, JSON only).

Jobs are RQ jobs calling :data:`JOB_FUNCTION` with one argument, the spec as JSON. They are
stored with RQ's ``JSONSerializer`` so a payload read from Redis can never run code; workers also
refuse any function but :data:`JOB_FUNCTION` (``worker.runtimes.queue.rq_hooks``). Progress, the
attempt count and a one-line failure reason travel in the job's ``meta`` (:class:`JobMeta`); a
cancel request is a flag key the running job polls between frames
(``jobs.redis_keys.job_cancel_key``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as RedisRetry
from rq import Queue, Retry
from rq.exceptions import DeserializationError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus, validate_job_id
from rq.serializers import JSONSerializer

from configs.errors import InputError, TransientError
from configs.settings import QueueSettings
from jobs.redis_keys import CANCEL_FLAG_TTL_S, job_cancel_key
from jobs.spec import JobSpec, parse_spec

if TYPE_CHECKING:  # fsspec is slow to import: ``streamseg submit`` never needs it
    from jobs.storage import Location, Manifest

JOB_FUNCTION = "worker.runtimes.queue.job_runner.run_job"
TERMINAL = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})
WAITING = frozenset({JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED, JobStatus.CREATED})
FailureKind = Literal[
    "input", "rejected", "cancelled", "timeout", "transient", "lost", "interrupted", "internal"
]


# --- what a job's meta holds ---------------------------------------------------------------


class JobProgress(BaseModel):
    """Where a running job is: frames done of ``total``, speed, time left, resume points."""

    model_config = ConfigDict(extra="ignore")

    frame: int = 0
    total: int | None = None
    fps: float = 0.0
    eta_s: float | None = None
    attempt: int = 0
    resumed_from: int | None = None
    checkpoint: int | None = None  # last frame saved for crash-resume


class JobFailure(BaseModel):
    """Why the last attempt failed: ``kind`` decides retrying (input, rejected, cancelled and
    timeout never are), ``message`` is one line for the user."""

    model_config = ConfigDict(extra="ignore")

    kind: FailureKind
    message: str


class JobMeta(BaseModel):
    model_config = ConfigDict(extra="ignore")

    progress: JobProgress = JobProgress()
    error: JobFailure | None = None
    transient_failures: int = 0  # failures that spent a retry: storage or network away
    lost: int = 0  # ... and workers that died mid-job (SIGKILL, OOM, lost machine)
    interruptions: int = 0  # warm shutdowns (SIGTERM, Ctrl+C): requeued, no retry spent
    retry_after: float | None = None  # epoch seconds: a retried attempt waits until then

    @property
    def failures(self) -> int:
        """Failed attempts that spent a retry."""
        return self.transient_failures + self.lost


def read_meta(job: Job) -> JobMeta:
    """The job's meta as written by streamseg (anything unreadable reads as empty)."""
    try:
        return JobMeta.model_validate(job.meta or {})
    except ValidationError:
        return JobMeta()


def write_meta(job: Job, meta: JobMeta) -> None:
    job.meta = meta.model_dump(mode="json")
    job.save_meta()


# --- connections, timeouts -----------------------------------------------------------------


def connect_redis(url: str) -> Redis:
    """A client that retries a reset or timed-out connection with exponential backoff."""
    return Redis.from_url(
        url,
        retry=RedisRetry(ExponentialBackoff(cap=8.0, base=0.25), retries=6),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )


def job_timeout_s(frames: int | None, settings: QueueSettings) -> int:
    """Seconds one attempt may take for a video of ``frames`` frames (None: unknown)."""
    if frames is None:
        return settings.job_timeout_unknown_s
    return int(settings.job_timeout_base_s + settings.job_timeout_per_frame_s * frames)


# --- the client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobView:
    """A job as a user sees it; ``state`` is RQ's status (queued, started, finished, failed,
    stopped, canceled, scheduled, deferred)."""

    id: str
    state: str
    spec: JobSpec | None
    meta: JobMeta
    enqueued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    worker: str | None
    retries_left: int | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def cancelled(self) -> bool:
        return self.state in (JobStatus.STOPPED, JobStatus.CANCELED)


@dataclass(frozen=True)
class JobResult:
    job_id: str
    location: Location
    manifest: Manifest

    def urls(self) -> list[str]:
        return [self.location.display(entry.name) for entry in self.manifest.files]


class JobQueue:
    """The queue ``name`` on ``redis``: submit, get, follow, cancel, result."""

    def __init__(self, redis: Redis, name: str, settings: QueueSettings) -> None:
        self.redis, self.name, self.settings = redis, name, settings
        self.queue = Queue(name, connection=redis, serializer=JSONSerializer)

    @classmethod
    def connect(
        cls, settings: QueueSettings, url: str | None = None, name: str | None = None
    ) -> JobQueue:
        return cls(connect_redis(url or settings.redis_url), name or settings.queue_name, settings)

    def submit(self, spec: JobSpec | dict, job_id: str | None = None) -> JobView:
        """Validate ``spec`` and put it on the queue; the new job's view.

        The source is not opened here (that is the worker's job, and slow): the RQ timeout is
        sized from ``max_frames`` when given, else it is the backstop ``job_timeout_unknown_s``;
        the worker stops the job between frames once the length it finds allows no more
        (``worker.runtimes.queue.job_runner``)."""
        spec = parse_spec(spec if isinstance(spec, JobSpec) else dict(spec))
        if job_id is not None:
            _check_job_id(job_id)
            self.redis.delete(job_cancel_key(job_id))  # a reused id starts uncancelled
        timeout = spec.timeout_s or job_timeout_s(spec.max_frames, self.settings)
        job = self._call_redis(
            lambda: self.queue.enqueue_call(
                JOB_FUNCTION,
                args=(spec.model_dump(mode="json"),),
                timeout=timeout,
                result_ttl=self.settings.result_ttl_s,
                failure_ttl=self.settings.result_ttl_s,
                job_id=job_id,
                description=f"segment {spec.source} -> {spec.output}",
                meta=JobMeta().model_dump(mode="json"),
                retry=Retry(max=self.settings.max_retries),
            )
        )
        return self.get(job.id)

    def get(self, job_id: str) -> JobView:
        job = self._fetch(job_id)
        return JobView(
            id=job.id,
            state=_state(job),
            spec=_spec_of(job),
            meta=_meta_with_reason(job),
            enqueued_at=job.enqueued_at,
            started_at=job.started_at,
            ended_at=job.ended_at,
            worker=job.worker_name,
            retries_left=job.retries_left,
        )

    def cancel(self, job_id: str) -> JobView:
        """Stop a job: a waiting one never runs, a running one stops between frames."""
        job = self._fetch(job_id)
        status = job.get_status()
        if status in TERMINAL:
            raise InputError(f"job {job_id} is already {JobStatus(status).value}")
        self.redis.set(job_cancel_key(job_id), "1", ex=CANCEL_FLAG_TTL_S)
        if status in WAITING:
            try:
                job.cancel()
            except InvalidJobOperation:
                pass  # it just started or was cancelled meanwhile: the flag stops it
        return self.get(job_id)

    def follow(
        self,
        job_id: str,
        on_update: Callable[[JobView], None] | None = None,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> JobView:
        """Poll until the job ends (or ``timeout_s`` passes); its last view."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            view = self.get(job_id)
            if on_update is not None:
                on_update(view)
            if view.done or (deadline is not None and time.monotonic() > deadline):
                return view
            time.sleep(poll_s)

    def result(self, job_id: str, check: bool = True) -> JobResult:
        """The finished job's files (checksums verified unless ``check`` is False)."""
        view = self.get(job_id)
        if view.state != JobStatus.FINISHED:
            reason = f": {view.meta.error.message}" if view.meta.error else ""
            raise InputError(f"job {job_id} is {view.state}, no result{reason}")
        if view.spec is None:
            raise InputError(f"job {job_id} has no readable spec")
        from jobs.storage import open_location, read_manifest, verify

        location = open_location(view.spec.output)
        manifest = read_manifest(location)
        if manifest is None or manifest.job_id != job_id:
            raise InputError(f"no result of job {job_id} in {view.spec.output} (overwritten?)")
        if check:
            verify(location, manifest)
        return JobResult(job_id, location, manifest)

    def _fetch(self, job_id: str) -> Job:
        from jobs.dead_letter import find_dead_letter

        letter = None
        try:
            _check_job_id(job_id)
            return self._call_redis(
                lambda: Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer)
            )
        except NoSuchJobError:
            letter = self._call_redis(lambda: find_dead_letter(self.redis, self.name, job_id))
            problem = f"no such job: {job_id}"
        except InputError as error:
            letter = self._call_redis(lambda: find_dead_letter(self.redis, self.name, job_id))
            problem = str(error)
        except (TransientError, InvalidJobOperation):
            raise
        except Exception as error:  # a job hash with garbage fields
            letter = self._call_redis(lambda: find_dead_letter(self.redis, self.name, job_id))
            problem = f"job {job_id} is unreadable: {type(error).__name__}: {error}"
        if letter is not None:
            problem += f"; moved aside by {letter.worker or 'a worker'} at {letter.at}: "
            problem += letter.reason
        raise InputError(" ".join(problem.split()))

    def _call_redis(self, operation):
        try:
            return operation()
        except (RedisConnectionError, RedisTimeoutError) as error:
            raise TransientError(f"cannot reach Redis: {error}") from None


def _check_job_id(job_id: str) -> None:
    try:
        validate_job_id(job_id)
    except (TypeError, ValueError) as error:
        raise InputError(f"bad job id {job_id!r}: {error}") from None


def _state(job: Job) -> str:
    status = job.get_status(refresh=False)
    return JobStatus(status).value if status else "unknown"


def _spec_of(job: Job) -> JobSpec | None:
    try:
        args = job.args
        return parse_spec(args[0]) if args else None
    except (DeserializationError, InputError, TypeError):
        return None


def _meta_with_reason(job: Job) -> JobMeta:
    """The meta; a failure streamseg did not explain (e.g. abandoned too often) gets RQ's."""
    meta = read_meta(job)
    if meta.error is not None or job.get_status(refresh=False) != JobStatus.FAILED:
        return meta
    result = job.latest_result()
    lines = (result.exc_string or "").strip().splitlines() if result is not None else []
    message = lines[-1] if lines else "failed"
    return meta.model_copy(update={"error": JobFailure(kind="internal", message=message)})
