"""Which floating-point precision the SAM 2 model runs in: ``auto``, ``fp32`` or ``bf16``.

``fp32`` computes exactly what the official predictor computes in float32. ``bf16`` runs the
model under ``torch.autocast(dtype=torch.bfloat16)``, as the official demo does on CUDA.
``auto`` picks bf16 where the hardware multiplies bf16 matrices natively (CUDA from Ampere
on; CPUs with AMX or AVX-512 BF16) and float32 elsewhere: on a CPU without bf16 instructions
autocast emulates bf16 and is several times slower than float32 (6x for Hiera-T at 512 px on
an AVX2-only EPYC).
"""

from __future__ import annotations

import torch

from configs.errors import InputError
from configs.models import PRECISIONS

AUTO, FP32, BF16 = PRECISIONS


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU has bf16 matrix instructions (AMX tiles or AVX-512 BF16)."""
    return cpu_has_amx() or _torch_cpu_reports("_is_avx512_bf16_supported")


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (bf16 matrix multiplies in hardware tiles)."""
    return _torch_cpu_reports("_is_amx_tile_supported")


def _torch_cpu_reports(check: str) -> bool:
    """``torch.cpu.<check>()``, False where this torch lacks it."""
    return bool(getattr(torch.cpu, check, lambda: False)())


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; ``None`` means float32 throughout."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision == FP32:
        return None
    if precision == BF16:
        return torch.bfloat16
    native = cuda_has_bf16_matmul(device) if device.type == "cuda" else cpu_has_bf16_matmul()
    return torch.bfloat16 if native and device.type in ("cuda", "cpu") else None


def cuda_has_bf16_matmul(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 natively (Ampere and later), not by emulation."""
    try:
        with torch.cuda.device(device):
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # older torch without ``including_emulation``
        return torch.cuda.get_device_capability(device)[0] >= 8


def bf16_on_cpu(dtype: torch.dtype | None, device: torch.device) -> bool:
    """Whether a model runs in bf16 on a CPU: its Linear/Conv weights are then stored in bf16
    (``worker.engines.sam2video.model``), and its attention may run as bf16 matrix multiplies
    (:func:`attention_as_matmuls`)."""
    return dtype == torch.bfloat16 and device.type == "cpu"


def attention_as_matmuls(dtype: torch.dtype | None, device: torch.device) -> bool:
    """Whether bf16 attention should run as two bf16 matrix multiplies instead of PyTorch's
    CPU flash kernel: in bf16 on a CPU without AMX, where that kernel computes bf16 at float32
    speed. With AMX the kernel is the faster one (1,024 queries x 7,204 keys, E=256: 7.8 ms
    against 11.4 ms as matmuls; ``BENCHMARKS.md``, issue 11)."""
    return bf16_on_cpu(dtype, device) and not cpu_has_amx()
