"""Malformed queue entries, moved aside: one reader and one writer of the dead-letter list.

A worker that finds an entry it cannot serve (an id RQ refuses, a job hash with garbage
fields, a registry entry naming neither) removes it from where it was, in the same
transaction records a :class:`DeadLetter` (what, where, why, who, when) on the queue's
dead-letter list (``jobs.redis_keys.dead_letter_key``), and goes on. ``streamseg status ID``
shows the record of an entry that was moved aside.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, ValidationError
from redis import Redis
from redis.client import Pipeline

from jobs.redis_keys import DEAD_LETTER_LIMIT, dead_letter_key


class DeadLetter(BaseModel):
    """One entry moved aside: ``entry`` as found in the Redis key ``source``, and why."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    entry: str
    source: str
    reason: str
    worker: str | None = None
    at: str = ""

    @property
    def job_id(self) -> str:
        """The job id part of the entry (registry entries are ``JOB_ID:EXECUTION_ID``)."""
        return self.entry.split(":", 1)[0]


def entry_text(raw: bytes | str) -> str:
    """A Redis value as text, whatever bytes it holds."""
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="backslashreplace")


def move_aside(
    redis: Redis,
    queue_name: str,
    letter: DeadLetter,
    remove: Callable[[Pipeline], None],
) -> None:
    """Run ``remove`` (queued on a transaction) and record ``letter``, atomically."""
    stamped = letter.model_copy(
        update={"at": letter.at or datetime.now(timezone.utc).isoformat(timespec="seconds")}
    )
    key = dead_letter_key(queue_name)
    with redis.pipeline(transaction=True) as pipe:
        remove(pipe)
        pipe.lpush(key, stamped.model_dump_json())
        pipe.ltrim(key, 0, DEAD_LETTER_LIMIT - 1)
        pipe.execute()


def read_dead_letters(redis: Redis, queue_name: str, limit: int = 100) -> list[DeadLetter]:
    """The newest ``limit`` records of the queue (unreadable records are skipped)."""
    letters = []
    for raw in redis.lrange(dead_letter_key(queue_name), 0, limit - 1):
        try:
            letters.append(DeadLetter.model_validate_json(raw))
        except ValidationError:
            continue
    return letters


def find_dead_letter(redis: Redis, queue_name: str, job_id: str) -> DeadLetter | None:
    """The newest record of ``job_id`` (or of the raw entry ``job_id``), or None."""
    for letter in read_dead_letters(redis, queue_name, DEAD_LETTER_LIMIT):
        if job_id in (letter.entry, letter.job_id):
            return letter
    return None
