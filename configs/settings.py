"""Defaults for every component, in one config object.

Each component receives only its own section (``Settings.tracker`` for the tracker, ...).
Values come from the dataclass defaults, overridden by ``STREAMSEG_*`` environment variables
where noted, then by command-line flags in the commands themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from configs.models import DEFAULT_MODEL


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


@dataclass(frozen=True)
class OutputSettings:
    """What a segmentation run writes."""

    write_tracks: bool = True
    write_overlay: bool = True


@dataclass(frozen=True)
class Settings:
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    outputs: OutputSettings = field(default_factory=OutputSettings)


def load_settings() -> Settings:
    return Settings()
