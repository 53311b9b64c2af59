"""``--auto``: SAM 2's automatic mask generator on a video's first frame, keeping N objects.

The generator runs on the very model the tracker uses (the video predictor is a ``SAM2Base``),
so nothing is loaded twice. Objects are ranked by predicted IoU, then stability, and numbered
1..N in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from configs.errors import InputError
from jobs.prompts import Prompt
from worker.runtimes.batch.inputs import VideoInput
from worker.video.source import open_video


@dataclass(frozen=True)
class AutoSettings:
    """How many objects to keep and the generator's grid and quality thresholds."""

    num_objects: int
    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    min_area: int = 0  # pixels; smaller masks are dropped


class AutoPrompts:
    """A prompt source: the ``num_objects`` best automatic masks of frame 0 of each video."""

    def __init__(self, loaded_model, settings: AutoSettings) -> None:
        """``loaded_model``: a ``worker.engines.sam2video.model.LoadedModel``."""
        if settings.num_objects < 1:
            raise InputError(f"--auto needs at least 1 object, got {settings.num_objects}")
        self.loaded = loaded_model
        self.settings = settings
        self.generator = _build_generator(loaded_model, settings)

    def prompts_for(self, video: VideoInput) -> list[Prompt]:
        rgb = first_frame(video)
        candidates = self._generate(rgb)
        kept = best_masks(candidates, self.settings.num_objects, self.settings.min_area)
        if not kept:
            raise InputError(f"--auto found no object on the first frame of {video.name!r}")
        return [Prompt(obj_id, 0, mask=mask) for obj_id, mask in enumerate(kept, start=1)]

    def unknown_names(self, videos: Sequence[VideoInput]) -> list[str]:
        return []

    def _generate(self, rgb: np.ndarray) -> list[dict]:
        import torch

        with torch.inference_mode(), self.loaded.autocast():
            return self.generator.generate(rgb)


def _build_generator(loaded_model, settings: AutoSettings):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    generator = SAM2AutomaticMaskGenerator(
        loaded_model.model,
        points_per_side=settings.points_per_side,
        points_per_batch=settings.points_per_batch,
        pred_iou_thresh=settings.pred_iou_thresh,
        stability_score_thresh=settings.stability_score_thresh,
        output_mode="binary_mask",
    )
    # SAM2ImagePredictor assumes the 1024-pixel model's feature maps (256, 128, 64); the
    # backbone's strides are 4, 8 and 16 whatever the input size.
    sizes = [int(loaded_model.image_size) // stride for stride in (4, 8, 16)]
    generator.predictor._bb_feat_sizes = [(size, size) for size in sizes]
    return generator


def first_frame(video: VideoInput) -> np.ndarray:
    """(H, W, 3) uint8 RGB of frame 0."""
    with open_video(video.source) as source:
        for frame in source:
            return frame.rgb
    raise InputError(f"{video.source} has no frames")


def best_masks(candidates: list[dict], count: int, min_area: int = 0) -> list[np.ndarray]:
    """The ``count`` best non-empty generator masks, best first."""
    usable = [c for c in candidates if int(c["area"]) > max(min_area, 0)]
    usable.sort(key=lambda c: (float(c["predicted_iou"]), float(c["stability_score"])))
    return [np.asarray(c["segmentation"], dtype=bool) for c in reversed(usable)][:count]
