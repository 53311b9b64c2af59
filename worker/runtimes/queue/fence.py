"""Fencing: the newest attempt of a job owns it; an older one still running stops, writing nothing.

A job runs twice when a live worker's heartbeats stall past abandoned-after (a paused VM, a
process stopped by SIGSTOP, a long GIL-holding call): another worker's maintenance declares it
lost, requeues it, and a second attempt starts while the first is still alive. Each attempt
takes a token when it starts, ``INCR streamseg:queue:attempt:<job id>`` (never reset, so a
reused job id gets a newer token too), and every write by which an older attempt could undo a
newer one checks that the token is still the newest:

* the job's meta (progress, failure): compare-and-write in one Lua script, atomically;
* between frames, before each checkpoint save, before clearing the old manifest, before
  publishing the outputs and before removing the checkpoint: :meth:`AttemptFence.check`
  raises :class:`Superseded`;
* the worker ends an attempt that raised ``Superseded`` (or failed or finished while no longer
  the newest) without touching the job: no status, meta, retry or result is written, only its
  own execution leaves the started registry
  (``worker.runtimes.queue.rq_hooks.StreamsegWorker``).

Storage cannot compare-and-write, so a file write by the older attempt can still land between
its check and the write itself (the time of one call, unless the process stalls just there);
what it writes is the same job's output of the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from rq.job import Job

from configs.errors import StreamsegError
from jobs.queue import JobMeta
from jobs.redis_keys import ATTEMPT_KEY_TTL_S, job_attempt_key

_WRITE_META_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('HSET', KEYS[2], 'meta', ARGV[2])
    return 1
end
return 0
"""


class Superseded(StreamsegError):
    """A newer attempt of this job has started: this one stops and writes nothing more."""


@dataclass(frozen=True)
class AttemptFence:
    """Attempt ``token`` of job ``job_id``; it owns the job while no newer token was taken."""

    redis: Redis
    job_id: str
    token: int

    @classmethod
    def take(cls, redis: Redis, job_id: str) -> AttemptFence:
        key = job_attempt_key(job_id)
        with redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, ATTEMPT_KEY_TTL_S)
            token, _ = pipe.execute()
        return cls(redis, job_id, int(token))

    def newest(self) -> int | None:
        """The newest token taken (None: the key is gone, so none newer than this one)."""
        key = job_attempt_key(self.job_id)
        with self.redis.pipeline() as pipe:
            pipe.get(key)
            pipe.expire(key, ATTEMPT_KEY_TTL_S)  # a job running for weeks keeps its key
            value, _ = pipe.execute()
        return None if value is None else int(value)

    def owns(self) -> bool:
        newest = self.newest()
        return newest is None or newest == self.token

    def check(self, what: str) -> None:
        """Raise ``Superseded`` when a newer attempt owns the job (``what``: the step refused)."""
        newest = self.newest()
        if newest is not None and newest != self.token:
            raise Superseded(
                f"attempt token {self.token} of job {self.job_id} was superseded by token "
                f"{newest}: {what} refused"
            )

    def write_meta(self, job: Job, meta: JobMeta) -> bool:
        """``meta`` into the job's hash if this attempt still owns the job (False: refused)."""
        job.meta = meta.model_dump(mode="json")
        keys = [job_attempt_key(self.job_id), job.key]
        script = self.redis.register_script(_WRITE_META_IF_OWNER)
        return bool(script(keys=keys, args=[self.token, job.serializer.dumps(job.meta)]))
