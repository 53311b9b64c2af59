"""Finding malformed entries in a queue's Redis keys and moving them aside.

RQ trusts what it reads: one entry it cannot parse (``rpush rq:queue:NAME 'bad/id'``, a job
hash with garbage fields, a registry entry naming no job) raises in the worker's dequeue or in
its maintenance pass, and the worker quits; so does every new worker, at its first maintenance
pass. Here each entry RQ is about to read is checked the way RQ will read it, and one that
would raise is moved to the queue's dead-letter list (``jobs.dead_letter``) with its reason.

Checked: the intermediate list (where ``BLMOVE`` puts a dequeued id), the started registry's
expired entries (what ``StartedJobRegistry.cleanup`` fetches) and the ready registry (what
``ReadyJobRegistry.cleanup`` fetches). The queue list itself is checked entry by entry as it is
dequeued (``worker.runtimes.queue.rq_hooks.StreamsegWorker.dequeue_job_and_maintain_ttl``).
"""

from __future__ import annotations

import logging
import time

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import NoSuchJobError
from rq.job import Job, validate_job_id
from rq.queue import Queue
from rq.registry import ReadyJobRegistry, StartedJobRegistry

from jobs.dead_letter import DeadLetter, entry_text, move_aside

log = logging.getLogger("streamseg.worker")
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)


def entry_problem(queue: Queue, raw: bytes | str, composite: bool = False) -> str | None:
    """Why RQ would fail to read this entry (None: it is fine, or names no job at all)."""
    text = entry_text(raw)
    parts = text.split(":")
    if composite and len(parts) != 2:
        return f"malformed registry entry {text!r}: expected JOB_ID:EXECUTION_ID"
    job_id = parts[0]
    try:
        validate_job_id(job_id)
    except ValueError as error:
        return f"malformed job id {text!r}: {error}"
    try:
        queue.job_class.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
    except NoSuchJobError:
        return None  # RQ drops entries of jobs that are gone
    except REDIS_ERRORS:
        raise
    except Exception as error:
        return f"unreadable job hash rq:job:{job_id}: {type(error).__name__}: {error}"
    return None


def move_list_entry(queue: Queue, key: str, raw: bytes | str, reason: str, worker: str) -> None:
    letter = DeadLetter(entry=entry_text(raw), source=key, reason=reason, worker=worker)
    move_aside(queue.connection, queue.name, letter, lambda pipe: pipe.lrem(key, 1, raw))
    log.error("moved %r out of %s: %s", letter.entry, key, reason)


def move_zset_entry(queue: Queue, key: str, raw: bytes | str, reason: str, worker: str) -> None:
    letter = DeadLetter(entry=entry_text(raw), source=key, reason=reason, worker=worker)
    move_aside(queue.connection, queue.name, letter, lambda pipe: pipe.zrem(key, raw))
    log.error("moved %r out of %s: %s", letter.entry, key, reason)


def sweep_queue(queue: Queue, worker: str) -> int:
    """Move aside every entry of ``queue``'s keys that RQ's maintenance would choke on."""
    redis: Redis = queue.connection
    moved = 0
    intermediate = queue.intermediate_queue_key
    for raw in redis.lrange(intermediate, 0, -1):
        if (reason := entry_problem(queue, raw)) is not None:
            move_list_entry(queue, intermediate, raw, reason, worker)
            moved += 1
    started = StartedJobRegistry(queue.name, connection=redis).key
    for raw in redis.zrangebyscore(started, 0, time.time()):
        if (reason := entry_problem(queue, raw, composite=True)) is not None:
            move_zset_entry(queue, started, raw, reason, worker)
            moved += 1
    ready = ReadyJobRegistry(queue.name, connection=redis).key
    for raw in redis.zrange(ready, 0, -1):
        if (reason := entry_problem(queue, raw)) is not None:
            move_zset_entry(queue, ready, raw, reason, worker)
            moved += 1
    return moved


def expire_jobs_of(queue: Queue, worker_name: str) -> list[str]:
    """Mark the running jobs of a worker known to be dead as abandoned now (so the next
    maintenance pass requeues them instead of waiting out ``abandoned_after_s``)."""
    redis: Redis = queue.connection
    started = StartedJobRegistry(queue.name, connection=redis).key
    expired = []
    for raw in redis.zrange(started, 0, -1):
        text = entry_text(raw)
        try:
            job = Job.fetch(text.split(":")[0], connection=redis, serializer=queue.serializer)
        except REDIS_ERRORS:
            raise
        except Exception:
            continue  # gone or malformed: maintenance deals with it
        if job.worker_name == worker_name:
            redis.zadd(started, {raw: time.time() - 1}, xx=True)
            expired.append(job.id)
    return expired
