"""The streaming SAM 2 tracker: one frame in, every object's mask out, constant memory.

It drives the ``sam2`` package's own model (``SAM2Base.forward_image``, ``track_step``,
``_encode_new_memory``) exactly as ``SAM2VideoPredictor.propagate_in_video`` does, but frame
by frame and with the bounded ``memory.MemoryBank`` instead of the predictor's ever-growing
per-frame state. The image encoder runs once per frame; objects whose memory holds the same
frames run as one batch.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from jobs.prompts import PendingPrompts, Prompt
from memory.bank import MemoryBank
from memory.entries import MemoryEntry
from memory.policy import MemoryPolicy
from worker.preprocess import preprocess_frame
from worker.sam2_memory_view import sam2_output_dict
from worker.sam2_model import LoadedModel

# ``num_frames`` SAM 2 is told for a live stream of unknown length: only ``min(num_frames,
# max_obj_ptrs_in_encoder)`` is read going forward, so any large value means "long video".
UNKNOWN_LENGTH = 1 << 30


@dataclass(frozen=True)
class ObjectResult:
    """One object on one frame.

    ``low_res_logits``: (1, 1, S/4, S/4) float32 mask logits at the model's resolution (after
    SAM 2's hole filling, as the official predictor stores them); ``mask``: (H, W) bool at
    source resolution; ``score``: the object-score logit (> 0 = present).
    """

    obj_id: int
    low_res_logits: torch.Tensor
    mask: np.ndarray
    score: float

    @property
    def visible(self) -> bool:
        return self.score > 0


@dataclass(frozen=True)
class FrameResult:
    frame_idx: int
    objects: dict[int, ObjectResult]


@dataclass(frozen=True)
class _FrameFeatures:
    """SAM 2 backbone output for one frame, computed once and expanded per batch."""

    backbone_out: dict
    video_hw: tuple[int, int]


class StreamingTracker:
    """Track any number of objects through a stream of frames.

    Prompts (``jobs.prompts.Prompt``) are queued with ``add_prompt`` for the frame they apply
    to; ``step(rgb)`` processes the next frame. An object's first prompt makes that frame its
    conditioning frame; later prompts correct it as the official predictor does.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        policy: MemoryPolicy | None = None,
        num_frames: int | None = None,
        offload_memory: bool = False,
    ) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.bank = MemoryBank(
            policy or MemoryPolicy.for_sam2(self.model),
            storage_device=torch.device("cpu") if offload_memory else loaded.device,
        )
        self.num_frames = num_frames if num_frames else UNKNOWN_LENGTH
        self.frame_idx = 0
        self._pending = PendingPrompts()

    # ----- prompts and objects -------------------------------------------------------------
    def add_prompt(self, prompt: Prompt) -> None:
        """Queue ``prompt`` for its frame (which must not be processed yet)."""
        self._pending.add(prompt, self.frame_idx)

    def remove_object(self, obj_id: int) -> None:
        self.bank.remove(obj_id)
        self._pending.drop_object(obj_id)

    def snapshot(self) -> bytes:
        """The tracker's memory before the next frame, for crash-resume (safe to load)."""
        from memory.snapshot import bank_to_bytes

        return bank_to_bytes(self.bank, self.frame_idx)

    def restore(self, data: bytes) -> None:
        """Continue from ``snapshot()``; prompts for later frames must be added again."""
        from memory.snapshot import bank_from_bytes

        self.frame_idx = bank_from_bytes(data, self.bank, self.loaded.device)
        self._pending.clear()

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.bank.objects)

    # ----- frames --------------------------------------------------------------------------
    def step(self, rgb: np.ndarray) -> FrameResult:
        """Process the next frame. ``rgb``: (H, W, 3) uint8."""
        image = preprocess_frame(rgb, self.loaded.image_size, self.loaded.device)
        return self.step_preprocessed(image, (rgb.shape[0], rgb.shape[1]))

    @torch.inference_mode()
    def step_preprocessed(self, image: torch.Tensor, video_hw: tuple[int, int]) -> FrameResult:
        """Process the next frame given as model input (1, 3, S, S) float32."""
        t = self.frame_idx
        with self.loaded.autocast():
            features = _FrameFeatures(self.model.forward_image(image), video_hw)
            prompts = self._pending.take(t)
            results: dict[int, ObjectResult] = {}
            for obj_id in sorted(prompts):
                results[obj_id] = self._run_prompted(t, prompts[obj_id], features)
            tracked = [o for o in self.object_ids if o not in prompts]
            for group in self._batches(tracked):
                results.update(self._run_tracking(t, group, features))
        self.frame_idx += 1
        return FrameResult(t, dict(sorted(results.items())))

    def _batches(self, obj_ids: list[int]) -> list[list[int]]:
        """Objects whose memory holds the same frames (they can share one forward pass)."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for obj_id in obj_ids:
            groups[self.bank.objects[obj_id].layout()].append(obj_id)
        return list(groups.values())

    def _vision(self, features: _FrameFeatures, batch: int) -> tuple[list, list, list]:
        """Backbone features expanded to ``batch`` objects, in track_step's (HW)BC layout."""
        out = features.backbone_out
        expanded = {
            "backbone_fpn": [f.expand(batch, -1, -1, -1) for f in out["backbone_fpn"]],
            "vision_pos_enc": [p.expand(batch, -1, -1, -1) for p in out["vision_pos_enc"]],
        }
        _, vision_feats, vision_pos, feat_sizes = self.model._prepare_backbone_features(expanded)
        return vision_feats, vision_pos, feat_sizes

    def _track_step(
        self,
        t: int,
        vision: tuple[list, list, list],
        output_dict: dict,
        run_mem_encoder: bool,
        is_init_cond_frame: bool = False,
        point_inputs: dict | None = None,
        mask_inputs: torch.Tensor | None = None,
        prev_sam_mask_logits: torch.Tensor | None = None,
    ) -> dict:
        """One ``SAM2Base.track_step`` on frame ``t`` (forward only, as the official predictor)."""
        vision_feats, vision_pos, feat_sizes = vision
        return self.model.track_step(
            frame_idx=t,
            is_init_cond_frame=is_init_cond_frame,
            current_vision_feats=vision_feats,
            current_vision_pos_embeds=vision_pos,
            feat_sizes=feat_sizes,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            output_dict=output_dict,
            num_frames=self.num_frames,
            run_mem_encoder=run_mem_encoder,
            prev_sam_mask_logits=prev_sam_mask_logits,
        )

    def _memory_view(self, obj_ids: list[int]) -> dict:
        memories = [self.bank.objects[o] for o in obj_ids]
        return sam2_output_dict(memories, self.bank.maskmem_pos_enc, self.loaded.device)

    def _run_tracking(
        self, t: int, obj_ids: list[int], features: _FrameFeatures
    ) -> dict[int, ObjectResult]:
        """Propagate a batch of objects with identical memory layout to frame ``t``."""
        vision = self._vision(features, len(obj_ids))
        out = self._track_step(t, vision, self._memory_view(obj_ids), run_mem_encoder=True)
        self.bank.cache_pos_enc(out["maskmem_pos_enc"])
        pred_masks = self._fill_holes(out["pred_masks"])
        results = {}
        for i, obj_id in enumerate(obj_ids):
            entry = MemoryEntry(
                t,
                out["maskmem_features"][i : i + 1],
                out["obj_ptr"][i : i + 1],
                out["object_score_logits"][i : i + 1],
            )
            self.bank.store(obj_id, entry, conditioning=False)
            results[obj_id] = self._result(obj_id, pred_masks[i : i + 1], entry, features)
        return results

    def _run_prompted(self, t: int, prompt: Prompt, features: _FrameFeatures) -> ObjectResult:
        """A frame with a prompt for this object: a new conditioning frame or a correction.

        As the official predictor: the prompt is decoded without running the memory encoder,
        then memory is encoded from the (hole-filled, upsampled) low-res mask, binarised.
        """
        memory = self.bank.objects.get(prompt.obj_id)
        is_new = memory is None or memory.is_empty
        vision = self._vision(features, 1)
        point_inputs, mask_inputs = self._encode_prompt(prompt, features.video_hw)
        prev_logits = None
        if is_new:
            output_dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        else:
            output_dict = self._memory_view([prompt.obj_id])
            if point_inputs is not None:
                prev_logits = self._current_logits(t, prompt.obj_id, features)
        out = self._track_step(
            t,
            vision,
            output_dict,
            run_mem_encoder=False,
            is_init_cond_frame=is_new,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            prev_sam_mask_logits=prev_logits,
        )
        pred_masks = self._fill_holes(out["pred_masks"])
        high_res = F.interpolate(
            pred_masks, size=(self.loaded.image_size,) * 2, mode="bilinear", align_corners=False
        )
        maskmem_features, maskmem_pos_enc = self.model._encode_new_memory(
            current_vision_feats=vision[0],
            feat_sizes=vision[2],
            pred_masks_high_res=high_res,
            object_score_logits=out["object_score_logits"],
            is_mask_from_pts=True,
        )
        self.bank.cache_pos_enc(maskmem_pos_enc)
        entry = MemoryEntry(t, maskmem_features, out["obj_ptr"], out["object_score_logits"])
        self.bank.store(prompt.obj_id, entry, conditioning=is_new)
        return self._result(prompt.obj_id, pred_masks, entry, features)

    def _current_logits(self, t: int, obj_id: int, features: _FrameFeatures) -> torch.Tensor:
        """What tracking alone predicts for ``obj_id`` on frame ``t`` (for a correction)."""
        vision = self._vision(features, 1)
        out = self._track_step(t, vision, self._memory_view([obj_id]), run_mem_encoder=False)
        return torch.clamp(self._fill_holes(out["pred_masks"]), -32.0, 32.0)

    def _encode_prompt(
        self, prompt: Prompt, video_hw: tuple[int, int]
    ) -> tuple[dict | None, torch.Tensor | None]:
        """Prompt -> SAM 2 ``point_inputs`` or ``mask_inputs`` at the model's resolution."""
        size = self.loaded.image_size
        device = self.loaded.device
        height, width = video_hw
        if prompt.mask is not None:
            mask = torch.as_tensor(prompt.mask, dtype=torch.bool)[None, None].float().to(device)
            if mask.shape[-2:] != (size, size):
                mask = F.interpolate(
                    mask, size=(size, size), align_corners=False, mode="bilinear", antialias=True
                )
                mask = (mask >= 0.5).float()
            return None, mask
        coords = (
            [[prompt.box[0], prompt.box[1]], [prompt.box[2], prompt.box[3]]] if prompt.box else []
        )
        labels = [2, 3] if prompt.box else []
        coords += [list(p) for p in prompt.points]
        labels += list(prompt.labels)
        points = torch.tensor(coords, dtype=torch.float32)[None]
        points = points / torch.tensor([width, height]) * size
        point_inputs = {
            "point_coords": points.to(device),
            "point_labels": torch.tensor(labels, dtype=torch.int32)[None].to(device),
        }
        return point_inputs, None

    def _fill_holes(self, pred_masks: torch.Tensor) -> torch.Tensor:
        """SAM 2's own hole filling (a no-op with a warning where its CUDA kernel is absent)."""
        from sam2.utils.misc import fill_holes_in_mask_scores

        if self.model.fill_hole_area <= 0:
            return pred_masks
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return fill_holes_in_mask_scores(pred_masks, self.model.fill_hole_area)

    def _result(
        self, obj_id: int, logits: torch.Tensor, entry: MemoryEntry, features: _FrameFeatures
    ) -> ObjectResult:
        logits = logits.float()
        video_res = F.interpolate(
            logits, size=features.video_hw, mode="bilinear", align_corners=False
        )
        mask = (video_res[0, 0] > 0).cpu().numpy()
        return ObjectResult(obj_id, logits, mask, float(entry.object_score_logits.float().item()))
