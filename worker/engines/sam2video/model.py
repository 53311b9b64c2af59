"""Building SAM 2 models from the registry, loading checkpoints, and the per-process cache.

The model is the ``sam2`` package's own ``SAM2VideoPredictor`` (a ``SAM2Base``) built from the
official hydra config with the same overrides the official video predictor uses, so that the
streaming tracker and ``propagate_in_video`` run identical modules.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from configs.errors import ModelLoadError
from configs.models import ModelSpec
from worker.engines.precision import attention_as_matmuls, bf16_on_cpu
from worker.engines.precision import autocast_dtype as precision_dtype
from worker.engines.sam2video.attention import MatmulAttention
from worker.engines.sam2video.position_cache import cache_position_encodings
from worker.engines.sam2video.value_projection import project_values_after_attending

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A ready-to-run SAM 2 model and how to run it.

    ``autocast_dtype`` is ``torch.bfloat16`` when the model runs under bf16 autocast (see
    ``worker.engines.precision``: ``auto`` on CUDA and on CPUs with bf16 matrix instructions) and
    ``None`` for float32 throughout; ``compiled``: its components went through
    ``worker.engines.sam2video.compile.compile_model``.
    """

    spec: ModelSpec
    model: torch.nn.Module  # sam2.sam2_video_predictor.SAM2VideoPredictor
    device: torch.device
    image_size: int
    autocast_dtype: torch.dtype | None
    checkpoint: Path | None
    compiled: bool = False

    @contextmanager
    def autocast(self) -> Iterator[None]:
        """The model's precision for the calls inside: autocast, and in bf16 on CPU also
        ``MatmulAttention`` (bf16 attention as bf16 matrix multiplies, see its module) where
        that pays (``worker.engines.precision.attention_as_matmuls``: CPUs without AMX)."""
        enabled = self.autocast_dtype is not None
        dtype = self.autocast_dtype or torch.float32
        with ExitStack() as stack:
            stack.enter_context(torch.autocast(self.device.type, dtype=dtype, enabled=enabled))
            if attention_as_matmuls(self.autocast_dtype, self.device):
                stack.enter_context(MatmulAttention())
            yield


def resolve_device(device: str | None) -> torch.device:
    """``cuda`` when present unless told otherwise; a clear error for an unusable device."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ModelLoadError(f"unknown device {device!r}: {error}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
    return resolved


def build_sam2(spec: ModelSpec, image_size: int | None, device: torch.device) -> torch.nn.Module:
    """The official video-predictor model for ``spec`` with random weights, in eval mode."""
    from sam2.build_sam import build_sam2_video_predictor

    overrides = []
    if image_size is not None:
        if image_size < 64 or image_size % 32 != 0:
            raise ModelLoadError(
                f"--image-size must be a multiple of 32 and >= 64, got {image_size}"
            )
        overrides.append(f"++model.image_size={image_size}")
    return build_sam2_video_predictor(
        spec.config, ckpt_path=None, device=str(device), hydra_overrides_extra=overrides
    )


def load_state(model: torch.nn.Module, checkpoint: Path, spec: ModelSpec) -> None:
    """Load an official ``{"model": state_dict}`` checkpoint strictly, with one-line errors."""
    if not checkpoint.is_file():
        raise ModelLoadError(f"no such checkpoint: {checkpoint}")
    try:
        payload = _read_checkpoint(checkpoint)
    except Exception as error:  # torch raises many types for corrupt files
        raise ModelLoadError(f"cannot read checkpoint {checkpoint}: {_first_line(error)}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise ModelLoadError(
            f"{checkpoint} is not a SAM 2 checkpoint (expected a dict with a 'model' state dict)"
        )
    state = payload["model"]
    model_keys = set(model.state_dict())
    missing = sorted(model_keys - set(state))
    unexpected = sorted(set(state) - model_keys)
    if missing or unexpected:
        raise ModelLoadError(
            f"checkpoint {checkpoint} does not fit model {spec.name}: "
            f"{len(missing)} missing keys{_examples(missing)}, "
            f"{len(unexpected)} unexpected keys{_examples(unexpected)}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelLoadError(
            f"checkpoint {checkpoint} does not fit model {spec.name}: {_first_line(error, 1)}"
        ) from None


def _read_checkpoint(checkpoint: Path) -> object:
    """``torch.load`` of ``checkpoint`` (weights only), memory-mapped where it is a zip archive
    (``torch.save``'s format since 1.6, the official checkpoints'): its tensors are then read
    from the page cache as ``load_state_dict`` copies them, instead of first into a second
    copy in memory (0.06 s instead of 0.16 for sam2.1-tiny's 156 MB, ``BENCHMARKS.md``).
    Older pickle-only files are read whole."""
    mmap = zipfile.is_zipfile(checkpoint)
    return torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=mmap)


def load_model(
    spec: ModelSpec,
    checkpoint: Path,
    image_size: int | None,
    device: str | None,
    precision: str = "auto",
    compile_model: bool = False,
) -> LoadedModel:
    """Build ``spec`` and load ``checkpoint`` into it.

    ``precision``: ``auto``, ``fp32`` or ``bf16`` (``worker.engines.precision``); ``compile_model``:
    compile the components ``SAM2VideoPredictorVOS`` compiles
    (``worker.engines.sam2video.compile``).
    """
    resolved = resolve_device(device)
    dtype = precision_dtype(precision, resolved)
    model = build_sam2(spec, image_size, torch.device("cpu"))
    load_state(model, checkpoint, spec)
    model = model.to(resolved).eval()
    if bf16_on_cpu(dtype, resolved):
        store_matmul_weights(model, dtype)
    if attention_as_matmuls(dtype, resolved):
        project_values_after_attending(model)
    if not compile_model:
        cache_position_encodings(model)
    else:
        from worker.engines.sam2video.compile import compile_sam2

        compile_sam2(model, resolved)
    log.info("loaded %s from %s on %s (autocast %s)", spec.name, checkpoint, resolved, dtype)
    size = int(model.image_size)
    return LoadedModel(spec, model, resolved, size, dtype, checkpoint, compile_model)


MATMUL_MODULES = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)


def store_matmul_weights(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Store the weights and biases of ``model``'s Linear and Conv layers in ``dtype``.

    Under ``torch.autocast(dtype=dtype)`` these layers cast their float32 weights to ``dtype``
    on every call (a third of the bf16 step's time went to such copies); stored in ``dtype``
    they are used as they are, so the results are bit-identical and only the copies go
    (``test_stored_bf16_weights_give_identical_logits``). The model must then only run under
    that autocast.
    """
    for layer in model.modules():
        if isinstance(layer, MATMUL_MODULES):
            layer.to(dtype)


_MODEL_CACHE: dict[tuple, LoadedModel] = {}


def cached_model(
    spec: ModelSpec,
    checkpoint: Path,
    image_size: int | None,
    device: str | None,
    precision: str = "auto",
    compile_model: bool = False,
) -> LoadedModel:
    """The per-process model cache: each (model, checkpoint, size, device, precision,
    compile) is loaded once."""
    resolved = str(resolve_device(device))
    key = (spec.name, str(Path(checkpoint).resolve()), image_size, resolved, precision)
    key += (compile_model,)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = load_model(
            spec, checkpoint, image_size, device, precision, compile_model
        )
    return _MODEL_CACHE[key]


def _examples(keys: list[str]) -> str:
    return f" (e.g. {', '.join(keys[:3])})" if keys else ""


def _first_line(error: BaseException, line: int = 0) -> str:
    lines = [part.strip() for part in str(error).splitlines() if part.strip()]
    if not lines:
        return type(error).__name__
    return lines[min(line, len(lines) - 1)]
