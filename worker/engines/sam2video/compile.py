"""``--compile``: torch.compile the SAM 2 components the official fast path compiles.

``sam2.sam2_video_predictor.SAM2VideoPredictorVOS`` (``vos_optimized=True``) compiles the
image encoder, memory encoder, memory attention, prompt encoder and mask decoder, each with
``fullgraph=True`` and static shapes except memory attention (the number of memories
varies). This does the same on the model instance streamseg runs: the image size is fixed
per model and object batches are at most ``configs.models.OBJECT_BATCH``, so shapes stay
few. Compiled kernels persist in ``<cache>/inductor`` (inductor's FX graph cache), so only a
process's first compile of a shape pays the full cost.

On CUDA the mode is ``max-autotune-no-cudagraphs``: the official predictor's ``max-autotune``
also replays CUDA graphs, whose outputs are overwritten by the next replay, which is why it
clones every output; streamseg's memory bank keeps outputs across frames, so graphs are left
out. On CPU it is inductor's default mode (``max-autotune`` only adds a GEMM template search
there, at a long compile time).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

# (component attribute, dynamic shapes) as in SAM2VideoPredictorVOS._compile_all_components
# and sam2_base (``compile_image_encoder``).
COMPILED_COMPONENTS: tuple[tuple[str, bool], ...] = (
    ("image_encoder", False),
    ("memory_encoder", False),
    ("memory_attention", True),
    ("sam_prompt_encoder", False),
    ("sam_mask_decoder", False),
)


def use_compile_cache(cache_dir: Path) -> Path:
    """Point inductor's persistent caches at ``cache_dir/inductor`` (unless already set)."""
    path = Path(os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir / "inductor")))
    path.mkdir(parents=True, exist_ok=True)
    torch._inductor.config.fx_graph_cache = True
    return path


def compile_mode(device: torch.device) -> str:
    return "max-autotune-no-cudagraphs" if device.type == "cuda" else "default"


def compile_sam2(model: torch.nn.Module, device: torch.device) -> None:
    """Replace each component's ``forward`` by its compiled version, in place (lazy: the
    first call of each shape compiles)."""
    mode = compile_mode(device)
    # objects batches of 1 .. OBJECT_BATCH and both autocast states: more graphs than
    # dynamo's default of 8 per function
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    for name, dynamic in COMPILED_COMPONENTS:
        module = getattr(model, name)
        module.forward = torch.compile(module.forward, mode=mode, fullgraph=True, dynamic=dynamic)
