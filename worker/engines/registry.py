"""Choosing and building the tracking engine for a run: SAM 2 (registry) or ``lite``.

``--model`` absent means *auto*: SAM 2 when a checkpoint is given or the default model's
checkpoint is in the cache; otherwise the weights-included ``lite`` engine, with a one-line
notice saying how to get SAM 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from configs.errors import ModelLoadError
from configs.models import DEFAULT_MODEL, get_model_spec
from configs.settings import TrackerSettings
from jobs.media import ModelInfo
from worker.engines.contract import Engine
from worker.engines.sam2video.checkpoints import cached_checkpoint, resolve_checkpoint

if TYPE_CHECKING:
    from jobs.media import VideoInfo
    from worker.engines.contract import Tracker

AUTO = "auto"
LITE = "lite"


def choose_model(settings: TrackerSettings, notify: Callable[[str], None] | None = None) -> str:
    """The model a run will use, resolving ``auto``."""
    if settings.model != AUTO:
        return settings.model
    if settings.checkpoint is not None:
        return DEFAULT_MODEL
    if cached_checkpoint(get_model_spec(DEFAULT_MODEL), settings.cache_dir) is not None:
        return DEFAULT_MODEL
    (notify or _stderr)(
        f"streamseg: no SAM 2 checkpoint found; using the built-in 'lite' model. For SAM 2, "
        f"pass --model {DEFAULT_MODEL} (downloads once) or --checkpoint PATH."
    )
    return LITE


def load_engine(settings: TrackerSettings, show_progress: bool = True) -> Engine:
    """Load the model ``settings`` asks for (once per process) and return its engine."""
    name = choose_model(settings)
    if name == LITE:
        check_device(settings.device, cpu_only=LITE)
        return _load_lite(settings)
    check_device(settings.device)
    return _load_sam2(name, settings, show_progress)


def check_device(device: str | None, cpu_only: str | None = None) -> None:
    """``device`` names a device this machine has (None: the engine's default); with
    ``cpu_only`` (an engine's name) it must also be the CPU. ``ModelLoadError`` otherwise."""
    if device is None:
        return
    import torch

    from worker.engines.sam2video.model import resolve_device

    if cpu_only is not None and device.split(":")[0].strip() != "cpu":
        raise ModelLoadError(f"the {cpu_only!r} model runs on the CPU only, not {device!r}")
    resolved = resolve_device(device)  # unknown names and CUDA without CUDA
    if resolved.type == "cuda" and resolved.index is not None:
        count = torch.cuda.device_count()
        if resolved.index >= count:
            raise ModelLoadError(f"device {device!r} requested but this machine has {count} GPUs")
    elif resolved.type not in ("cpu", "cuda"):
        raise ModelLoadError(f"device {device!r} is not supported: use cpu, cuda or cuda:N")


def _load_sam2(name: str, settings: TrackerSettings, show_progress: bool) -> Engine:
    from worker.engines.sam2video.model import cached_model
    from worker.engines.sam2video.tracker import StreamingTracker

    spec = get_model_spec(name)
    checkpoint = resolve_checkpoint(spec, settings.checkpoint, settings.cache_dir, show_progress)
    if settings.compile:
        from worker.engines.sam2video.compile import use_compile_cache

        use_compile_cache(settings.cache_dir)
    loaded = cached_model(
        spec, checkpoint, settings.image_size, settings.device, settings.precision, settings.compile
    )

    def make_tracker(info: VideoInfo) -> Tracker:
        return StreamingTracker(
            loaded, num_frames=info.num_frames, offload_memory=settings.offload_memory_to_cpu
        )

    model = ModelInfo(
        name=spec.name,
        checkpoint=Path(checkpoint).name,
        image_size=loaded.image_size,
        device=str(loaded.device),
    )
    return Engine(spec.name, make_tracker, model)


def _load_lite(settings: TrackerSettings) -> Engine:
    from worker.engines.lite.tracker import load_lite_engine

    return load_lite_engine(settings)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)
