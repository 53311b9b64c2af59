"""The model registry: every model name streamseg accepts, in one place.

Each SAM 2 entry maps a public name to the official hydra config shipped inside the ``sam2``
package and to the official checkpoint URL (a ``{"model": state_dict}`` file).
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.errors import InputError

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


def model_names() -> list[str]:
    return [spec.name for spec in SAM2_MODELS]


def get_model_spec(name: str) -> ModelSpec:
    """The registered model called ``name``; an ``InputError`` listing the names otherwise."""
    for spec in SAM2_MODELS:
        if spec.name == name:
            return spec
    raise InputError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}")
