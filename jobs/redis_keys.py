"""Every Redis key and queue name streamseg uses, in one place.

Each section belongs to one component; keys are namespaced under ``streamseg:`` so that a
shared Redis server can be inspected (``redis-cli --scan --pattern 'streamseg:*'``).
"""

from __future__ import annotations

PREFIX = "streamseg"


# ----- live sessions (worker.runtimes.live.remote) ------------------------------------------------
# A remote live session ``SID`` has three streams: frames (capture side -> tracker side, trimmed
# to the newest few), results (tracker side -> capture side, trimmed too) and control (prompts
# and commands, capture side -> tracker side; never trimmed below what a session can send).
# The rq queue that GPU boxes serve live sessions from (``rq worker streamseg-live``):
LIVE_QUEUE = "streamseg-live"


def live_frames_key(session_id: str) -> str:
    return f"{PREFIX}:live:{session_id}:frames"


def live_results_key(session_id: str) -> str:
    return f"{PREFIX}:live:{session_id}:results"


def live_control_key(session_id: str) -> str:
    return f"{PREFIX}:live:{session_id}:control"


def live_session_keys(session_id: str) -> tuple[str, str, str]:
    """(frames, results, control): every key one live session writes."""
    return live_frames_key(session_id), live_results_key(session_id), live_control_key(session_id)


# ----- job queue (jobs.queue, worker.runtimes.queue.rq_hooks and .job_runner) ---------------------
# Segmentation jobs live in RQ's own keys (``rq:queue:<name>``, ``rq:job:<id>``, registries), so
# that ``rq info`` sees them; streamseg adds one flag per job that asks a running job to stop,
# one attempt counter per job (the fencing token of each attempt), and one dead-letter list per
# queue: malformed entries a worker found and moved aside.
CANCEL_FLAG_TTL_S = 7 * 24 * 3600
ATTEMPT_KEY_TTL_S = 30 * 24 * 3600  # refreshed by the running attempt between frames
DEAD_LETTER_LIMIT = 10_000  # newest entries kept per queue


def job_cancel_key(job_id: str) -> str:
    """Set (any value) to ask the worker running ``job_id`` to stop between frames."""
    return f"{PREFIX}:queue:cancel:{job_id}"


def job_attempt_key(job_id: str) -> str:
    """A counter: each attempt of ``job_id`` takes the next value, its fencing token
    (``worker.runtimes.queue.fence``); never reset, so a reused id's attempts are newer too."""
    return f"{PREFIX}:queue:attempt:{job_id}"


def dead_letter_key(queue_name: str) -> str:
    """A list of JSON ``jobs.dead_letter.DeadLetter`` records, newest first."""
    return f"{PREFIX}:queue:dead-letter:{queue_name}"
