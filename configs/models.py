"""The model registry: every model name streamseg accepts, in one place.

Each SAM 2 entry maps a public name to the official hydra config shipped inside the ``sam2``
package and to the official checkpoint URL (a ``{"model": state_dict}`` file).
"""

from __future__ import annotations

from dataclasses import dataclass

from configs.errors import InputError

_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/072824"
_SAM21_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    ``config`` is the hydra config name inside the sam2 package (``configs/...yaml``);
    ``image_size`` is the model's native square input size in pixels.
    """

    name: str
    config: str
    checkpoint_url: str
    image_size: int = 1024

    @property
    def checkpoint_filename(self) -> str:
        return self.checkpoint_url.rsplit("/", 1)[-1]


SAM2_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("sam2-tiny", "configs/sam2/sam2_hiera_t.yaml", f"{_SAM2_URL}/sam2_hiera_tiny.pt"),
    ModelSpec("sam2-small", "configs/sam2/sam2_hiera_s.yaml", f"{_SAM2_URL}/sam2_hiera_small.pt"),
    ModelSpec(
        "sam2-base-plus", "configs/sam2/sam2_hiera_b+.yaml", f"{_SAM2_URL}/sam2_hiera_base_plus.pt"
    ),
    ModelSpec("sam2-large", "configs/sam2/sam2_hiera_l.yaml", f"{_SAM2_URL}/sam2_hiera_large.pt"),
    ModelSpec(
        "sam2.1-tiny", "configs/sam2.1/sam2.1_hiera_t.yaml", f"{_SAM21_URL}/sam2.1_hiera_tiny.pt"
    ),
    ModelSpec(
        "sam2.1-small", "configs/sam2.1/sam2.1_hiera_s.yaml", f"{_SAM21_URL}/sam2.1_hiera_small.pt"
    ),
    ModelSpec(
        "sam2.1-base-plus",
        "configs/sam2.1/sam2.1_hiera_b+.yaml",
        f"{_SAM21_URL}/sam2.1_hiera_base_plus.pt",
    ),
    ModelSpec(
        "sam2.1-large", "configs/sam2.1/sam2.1_hiera_l.yaml", f"{_SAM21_URL}/sam2.1_hiera_large.pt"
    ),
)

DEFAULT_MODEL = "sam2.1-tiny"

# How the SAM 2 model computes (``worker.engines.precision``): ``auto`` = bf16 autocast where the
# hardware has bf16 matrix instructions (CUDA, AMX / AVX-512 BF16 CPUs), else float32.
PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_PRECISION = "auto"

# Objects one video may track. Each object costs, per frame, one slot in the batched memory
# attention / mask decoder / memory encoder passes and one (H, W) bool mask at source
# resolution (2 MB at 1080p) on its way to the writers; its memory bank holds 7 spatial
# memories of 64 x (S/16)^2 bf16 (3.5 MB at S = 1024) plus 16 pointers. 256 objects keep a
# 1080p frame under about 1.5 GB of masks and bank and a frame's work bounded.
MAX_OBJECTS = 256

# The largest frame a source may have, in pixels: DCI 8K's area (8192 x 4320, 35.4 MP), in any
# shape. Every frame is decoded, masked and drawn at source resolution, and the lite engine's
# edge refinement takes ~250 bytes a pixel: 8.3 GB at 7680 x 4320, measured, while a 4.5 MB
# 12000 x 12000 MJPEG took the process past 24 GB and was OOM-killed. Larger sources are
# refused with one line when they are opened, before a model loads.
MAX_SOURCE_PIXELS = 8192 * 4320

# Objects run through SAM 2's heads together, at most this many per pass: bounds the
# activation memory of one pass (it grows with the batch) and lets progress move within a
# frame with many objects.
OBJECT_BATCH = 16


def model_names() -> list[str]:
    return [spec.name for spec in SAM2_MODELS]


def check_object_count(count: int) -> None:
    """An ``InputError`` when a video would track more than ``MAX_OBJECTS`` objects."""
    if count > MAX_OBJECTS:
        raise InputError(
            f"{count} objects given; at most {MAX_OBJECTS} objects can be tracked in one video"
        )


def get_model_spec(name: str) -> ModelSpec:
    """The registered model called ``name``; an ``InputError`` listing the names otherwise."""
    for spec in SAM2_MODELS:
        if spec.name == name:
            return spec
    raise InputError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}")
