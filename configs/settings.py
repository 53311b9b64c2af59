"""Defaults for every component, in one config object.

Each component receives only its own section (``Settings.tracker`` for the tracker, ...).
Values come from the dataclass defaults, overridden by ``STREAMSEG_*`` environment variables
where noted, then by command-line flags in the commands themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from configs.models import DEFAULT_MODEL, DEFAULT_PRECISION

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"  # without $STREAMSEG_REDIS_URL
DEFAULT_JOB_QUEUE = "streamseg"  # without $STREAMSEG_QUEUE


def default_cache_dir() -> Path:
    """Where downloaded checkpoints live: ``$STREAMSEG_CACHE`` or ``~/.cache/streamseg``."""
    env = os.environ.get("STREAMSEG_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "streamseg"


@dataclass(frozen=True)
class TrackerSettings:
    """The streaming tracker: model, input size, device and memory-bank storage."""

    model: str = DEFAULT_MODEL
    checkpoint: Path | None = None
    image_size: int | None = None  # None = the model's native size
    device: str | None = None  # None = cuda if available else cpu
    offload_memory_to_cpu: bool = False  # keep the memory bank in host RAM (GPU runs)
    cache_dir: Path = field(default_factory=default_cache_dir)
    precision: str = DEFAULT_PRECISION  # auto | fp32 | bf16 (worker.engines.precision)
    compile: bool = False  # torch.compile SAM 2's components (worker.engines.sam2video.compile)


@dataclass(frozen=True)
class OutputSettings:
    """What a segmentation run writes."""

    write_tracks: bool = True
    write_overlay: bool = True


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def default_work_dir() -> Path:
    """Scratch space of queue workers: ``$STREAMSEG_WORK_DIR`` or ``<cache>/work``."""
    env = os.environ.get("STREAMSEG_WORK_DIR")
    return Path(env) if env else default_cache_dir() / "work"


@dataclass(frozen=True)
class QueueSettings:
    """Redis + RQ job queue: where it is, how often workers prove they are alive, retries.

    Environment overrides: ``STREAMSEG_REDIS_URL``, ``STREAMSEG_QUEUE``,
    ``STREAMSEG_CHECKPOINT_EVERY``, ``STREAMSEG_HEARTBEAT_S``, ``STREAMSEG_ABANDONED_AFTER_S``,
    ``STREAMSEG_MAINTENANCE_S``, ``STREAMSEG_WORKER_TTL_S``, ``STREAMSEG_WORK_DIR``,
    ``STREAMSEG_DEVICE``.

    A worker that dies mid-job (SIGKILL, OOM, lost machine) stops heartbeating; its job is
    declared abandoned ``abandoned_after_s`` after the last heartbeat and requeued by the next
    maintenance pass of any live worker, idle or busy (every ``maintenance_interval_s``), so it
    comes back within about ``abandoned_after_s + maintenance_interval_s`` (see
    ``worker.runtimes.queue.rq_hooks``). ``abandoned_after_s`` must stay well above the longest
    pause of a healthy worker's heartbeat thread (a stalled disk, a swapping host).
    """

    redis_url: str = field(default_factory=lambda: _env("STREAMSEG_REDIS_URL", DEFAULT_REDIS_URL))
    queue_name: str = field(default_factory=lambda: _env("STREAMSEG_QUEUE", DEFAULT_JOB_QUEUE))
    checkpoint_every: int = field(  # frames between crash-resume checkpoints
        default_factory=lambda: _env_int("STREAMSEG_CHECKPOINT_EVERY", 100)
    )
    heartbeat_interval_s: float = field(
        default_factory=lambda: _env_float("STREAMSEG_HEARTBEAT_S", 5.0)
    )
    abandoned_after_s: int = field(
        default_factory=lambda: _env_int("STREAMSEG_ABANDONED_AFTER_S", 30)
    )
    maintenance_interval_s: int = field(
        default_factory=lambda: _env_int("STREAMSEG_MAINTENANCE_S", 10)
    )
    worker_ttl_s: int = field(  # a worker's registration lives this long without a heartbeat
        default_factory=lambda: _env_int("STREAMSEG_WORKER_TTL_S", 30)
    )
    device: str | None = field(  # where this worker's jobs run (None: cuda if present)
        default_factory=lambda: os.environ.get("STREAMSEG_DEVICE") or None
    )
    max_retries: int = 5  # lost workers and transient failures, together, per job
    retry_backoff_s: tuple[float, ...] = (2.0, 10.0, 30.0, 60.0)  # after transient failures
    storage_attempts: int = 4  # tries of one storage operation (exponential backoff)
    storage_backoff_s: float = 0.5
    job_timeout_base_s: int = 900  # job timeout = base + per_frame * frames
    job_timeout_per_frame_s: float = 2.0
    job_timeout_unknown_s: int = 24 * 3600  # when the video's length is not known up front
    result_ttl_s: int = 7 * 24 * 3600
    progress_every_s: float = 0.5  # at most this often a job's progress meta is written
    work_dir: Path = field(default_factory=default_work_dir)

    @property
    def redis_url_shown(self) -> str:
        """``redis_url`` with any password masked, for help texts and logs."""
        return redact_url(self.redis_url)


def redact_url(url: str) -> str:
    """``scheme://user:***@host...``: a URL fit to print."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.hostname or ""
    netloc = f"{user}***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class Settings:
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    outputs: OutputSettings = field(default_factory=OutputSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)


def load_settings() -> Settings:
    return Settings()
