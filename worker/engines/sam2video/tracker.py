"""The streaming SAM 2 tracker: one frame in, every object's mask out, constant memory.

It drives the ``sam2`` package's own model (``SAM2Base.forward_image``, ``track_step``,
``_encode_new_memory``) exactly as ``SAM2VideoPredictor.propagate_in_video`` does, but frame
by frame and with the bounded ``memory.MemoryBank`` instead of the predictor's ever-growing
per-frame state. The image encoder runs once per frame (or once per look-ahead batch of frames,
``step_many``). Per frame, objects run in batches of at most ``configs.models.OBJECT_BATCH``:
memory attention once per set of objects whose memory holds the same frames (the only step
whose input shape depends on it), the mask decoder and the memory encoder once per batch for
all of them; newly prompted objects whose prompts have the same form (a mask; or the same
number of points, with or without a box) are decoded and encoded together. Work per frame is
linear in the number of objects, at most ``configs.models.MAX_OBJECTS``.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from configs.models import OBJECT_BATCH, check_object_count
from jobs.prompts import PendingPrompts, Prompt
from memory.bank import MemoryBank
from memory.entries import MemoryEntry
from memory.policy import MemoryPolicy
from worker.engines.contract import FrameResult, ObjectResult
from worker.engines.sam2video.memory_view import sam2_output_dict
from worker.engines.sam2video.model import LoadedModel
from worker.engines.sam2video.preprocess import preprocess_frame

# ``num_frames`` SAM 2 is told for a live stream of unknown length: only ``min(num_frames,
# max_obj_ptrs_in_encoder)`` is read going forward, so any large value means "long video".
UNKNOWN_LENGTH = 1 << 30


@dataclass
class PassCounts:
    """How many batched passes of each SAM 2 component the last frame took."""

    memory_attention: int = 0
    mask_decoder: int = 0
    memory_encoder: int = 0


# ``on_objects(done, total)``: objects finished so far on the current frame, of ``total``.
ObjectProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class _FrameFeatures:
    """SAM 2 backbone output for one frame, computed once and expanded per batch."""

    backbone_out: dict
    video_hw: tuple[int, int]


def _frame_slice(backbone_out: dict, index: int) -> dict:
    """Frame ``index`` of a batched ``forward_image`` output (batch 1, views)."""
    return {
        key: [level[index : index + 1] for level in backbone_out[key]]
        for key in ("backbone_fpn", "vision_pos_enc")
    }


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class StreamingTracker:
    """Track any number of objects (up to ``MAX_OBJECTS``) through a stream of frames.

    Prompts (``jobs.prompts.Prompt``) are queued with ``add_prompt`` for the frame they apply
    to; ``step(rgb)`` processes the next frame, ``step_many(rgbs)`` the next few with one
    batched image encoding. An object's first prompt makes that frame its conditioning frame;
    later prompts correct it as the official predictor does. ``on_objects(done, total)`` is
    called after each batch of objects within a frame (progress on frames with many objects).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        policy: MemoryPolicy | None = None,
        num_frames: int | None = None,
        offload_memory: bool = False,
        object_batch: int = OBJECT_BATCH,
        on_objects: ObjectProgress | None = None,
    ) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.bank = MemoryBank(
            policy or MemoryPolicy.for_sam2(self.model),
            storage_device=torch.device("cpu") if offload_memory else loaded.device,
        )
        self.num_frames = num_frames if num_frames else UNKNOWN_LENGTH
        self.frame_idx = 0
        self.object_batch = max(1, int(object_batch))
        self.on_objects = on_objects
        self.passes = PassCounts()
        self._pending = PendingPrompts()
        self._known: set[int] = set()  # objects in the bank or with a queued prompt

    # ----- prompts and objects -------------------------------------------------------------
    def add_prompt(self, prompt: Prompt) -> None:
        """Queue ``prompt`` for its frame (which must not be processed yet)."""
        if prompt.obj_id not in self._known:
            check_object_count(len(self._known) + 1)
        self._pending.add(prompt, self.frame_idx)
        self._known.add(prompt.obj_id)

    def remove_object(self, obj_id: int) -> None:
        self.bank.remove(obj_id)
        self._pending.drop_object(obj_id)
        self._known.discard(obj_id)

    def snapshot(self) -> bytes:
        """The tracker's memory before the next frame, for crash-resume (safe to load)."""
        from memory.snapshot import bank_to_bytes

        return bank_to_bytes(self.bank, self.frame_idx)

    def restore(self, data: bytes) -> None:
        """Continue from ``snapshot()``; prompts for later frames must be added again."""
        from memory.snapshot import bank_from_bytes

        self.frame_idx = bank_from_bytes(data, self.bank, self.loaded.device)
        self._pending.clear()
        self._known = set(self.bank.objects)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.bank.objects)

    # ----- frames --------------------------------------------------------------------------
    def step(self, rgb: np.ndarray) -> FrameResult:
        """Process the next frame. ``rgb``: (H, W, 3) uint8."""
        return self.step_many([rgb])[0]

    def step_many(self, rgbs: Sequence[np.ndarray]) -> list[FrameResult]:
        """Process the next ``len(rgbs)`` frames, image-encoded in one batch (look-ahead).

        Prompts for all of these frames must be queued before. ``rgbs``: (H, W, 3) uint8 each.
        """
        images = torch.cat([self.preprocess(rgb) for rgb in rgbs])
        return self.step_preprocessed_many(images, [(rgb.shape[0], rgb.shape[1]) for rgb in rgbs])

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """``rgb`` (H, W, 3) uint8 -> the model input (1, 3, S, S) float32 on the model's
        device, for ``step_preprocessed`` (thread-safe: it touches no tracker state)."""
        return preprocess_frame(rgb, self.loaded.image_size, self.loaded.device)

    def step_preprocessed(self, image: torch.Tensor, video_hw: tuple[int, int]) -> FrameResult:
        """Process the next frame given as model input (1, 3, S, S) float32."""
        return self.step_preprocessed_many(image, [video_hw])[0]

    @torch.inference_mode()
    def step_preprocessed_many(
        self, images: torch.Tensor, video_hws: Sequence[tuple[int, int]]
    ) -> list[FrameResult]:
        """The next K frames given as model input (K, 3, S, S) float32, one (H, W) each."""
        with self.loaded.autocast():
            backbone_out = self.model.forward_image(images)
        results = []
        for index, video_hw in enumerate(video_hws):
            features = _FrameFeatures(_frame_slice(backbone_out, index), tuple(video_hw))
            results.append(self._step_features(features))
        return results

    def _step_features(self, features: _FrameFeatures) -> FrameResult:
        t = self.frame_idx
        self.passes = PassCounts()
        prompts = self._pending.take(t)
        tracked = [o for o in self.object_ids if o not in prompts]
        batches = [(True, b) for b in self._prompt_batches(prompts)]
        batches += [(False, b) for b in self._tracking_batches(tracked)]
        results: dict[int, ObjectResult] = {}
        with self.loaded.autocast():
            for prompted, batch in batches:
                if prompted:
                    results.update(self._run_prompted(t, batch, features))
                else:
                    results.update(self._run_tracking(t, batch, features))
                if self.on_objects is not None:
                    self.on_objects(len(results), len(prompts) + len(tracked))
        self.frame_idx += 1
        return FrameResult(t, dict(sorted(results.items())))

    def _tracking_batches(self, obj_ids: list[int]) -> list[list[int]]:
        """Tracked objects in batches of ``object_batch``, objects with the same memory layout
        next to each other (each layout needs its own memory-attention pass)."""
        ordered = sorted(obj_ids, key=lambda o: (self.bank.objects[o].layout(), o))
        return _chunks(ordered, self.object_batch)

    def _layout_runs(self, obj_ids: list[int]) -> list[list[int]]:
        """``obj_ids`` split where the memory layout changes (same layout: one pass)."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for obj_id in obj_ids:
            groups[self.bank.objects[obj_id].layout()].append(obj_id)
        return list(groups.values())

    def _prompt_batches(self, prompts: dict[int, Prompt]) -> list[list[Prompt]]:
        """Prompts in batches that SAM 2 decodes exactly as one by one: new objects whose
        prompts have the same form; each correction of an existing object alone."""
        groups: dict[tuple, list[Prompt]] = defaultdict(list)
        for obj_id in sorted(prompts):
            prompt = prompts[obj_id]
            if not self._is_new(obj_id):
                key: tuple = ("correction", obj_id)
            elif prompt.mask is not None:
                key = ("mask",)
            else:
                key = ("points", len(prompt.points), prompt.box is not None)
            groups[key].append(prompt)
        return [chunk for group in groups.values() for chunk in _chunks(group, self.object_batch)]

    def _is_new(self, obj_id: int) -> bool:
        memory = self.bank.objects.get(obj_id)
        return memory is None or memory.is_empty

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
        if mask_inputs is None or not self.model.use_mask_input_as_output_without_sam:
            self.passes.memory_attention += 1
        self.passes.mask_decoder += 1
        self.passes.memory_encoder += int(run_mem_encoder)
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

    def _conditioned(self, t: int, obj_ids: list[int], features: _FrameFeatures) -> torch.Tensor:
        """Memory attention for objects with one memory layout: (B, C, H/16, W/16)."""
        vision_feats, vision_pos, feat_sizes = self._vision(features, len(obj_ids))
        self.passes.memory_attention += 1
        return self.model._prepare_memory_conditioned_features(
            frame_idx=t,
            is_init_cond_frame=False,
            current_vision_feats=vision_feats[-1:],
            current_vision_pos_embeds=vision_pos[-1:],
            feat_sizes=feat_sizes[-1:],
            output_dict=self._memory_view(obj_ids),
            num_frames=self.num_frames,
        )

    def _run_tracking(
        self, t: int, obj_ids: list[int], features: _FrameFeatures
    ) -> dict[int, ObjectResult]:
        """Propagate a batch of objects to frame ``t``: what ``SAM2Base.track_step`` does
        (``_track_step`` then ``_encode_memory_in_output``), with memory attention run per
        memory layout and the heads and memory encoder once for the whole batch."""
        runs = self._layout_runs(obj_ids)
        obj_ids = [o for run in runs for o in run]
        pix_feat = torch.cat([self._conditioned(t, run, features) for run in runs])
        vision_feats, _, feat_sizes = self._vision(features, len(obj_ids))
        high_res_features = [
            x.permute(1, 2, 0).view(x.size(1), x.size(2), *s)
            for x, s in zip(vision_feats[:-1], feat_sizes[:-1], strict=True)
        ] or None
        sam_outputs = self.model._forward_sam_heads(
            backbone_features=pix_feat,
            high_res_features=high_res_features,
            multimask_output=self.model._use_multimask(False, None),
        )
        _, _, _, low_res_masks, high_res_masks, obj_ptr, scores = sam_outputs
        maskmem_features, maskmem_pos_enc = self.model._encode_new_memory(
            current_vision_feats=vision_feats,
            feat_sizes=feat_sizes,
            pred_masks_high_res=high_res_masks,
            object_score_logits=scores,
            is_mask_from_pts=False,
        )
        self.passes.mask_decoder += 1
        self.passes.memory_encoder += 1
        self.bank.cache_pos_enc(maskmem_pos_enc)
        entries = [
            MemoryEntry(t, maskmem_features[i : i + 1], obj_ptr[i : i + 1], scores[i : i + 1])
            for i in range(len(obj_ids))
        ]
        for obj_id, entry in zip(obj_ids, entries, strict=True):
            self.bank.store(obj_id, entry, conditioning=False)
        return self._results(obj_ids, self._fill_holes(low_res_masks), entries, features)

    def _run_prompted(
        self, t: int, prompts: list[Prompt], features: _FrameFeatures
    ) -> dict[int, ObjectResult]:
        """Frame ``t`` with a prompt for each object: new conditioning frames (prompts of one
        form, batched) or the correction of one existing object.

        As the official predictor: the prompt is decoded without running the memory encoder,
        then memory is encoded from the (hole-filled, upsampled) low-res mask, binarised.
        """
        obj_ids = [p.obj_id for p in prompts]
        is_new = self._is_new(obj_ids[0])
        vision = self._vision(features, len(prompts))
        point_inputs, mask_inputs = self._encode_prompts(prompts, features.video_hw)
        prev_logits = None
        if is_new:
            output_dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        else:
            output_dict = self._memory_view(obj_ids)
            if point_inputs is not None:
                prev_logits = self._current_logits(t, obj_ids, features)
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
        self.passes.memory_encoder += 1
        self.bank.cache_pos_enc(maskmem_pos_enc)
        scores, obj_ptr = out["object_score_logits"], out["obj_ptr"]
        entries = [
            MemoryEntry(t, maskmem_features[i : i + 1], obj_ptr[i : i + 1], scores[i : i + 1])
            for i in range(len(obj_ids))
        ]
        for obj_id, entry in zip(obj_ids, entries, strict=True):
            self.bank.store(obj_id, entry, conditioning=is_new)
        return self._results(obj_ids, pred_masks, entries, features)

    def _current_logits(self, t: int, obj_ids: list[int], features: _FrameFeatures) -> torch.Tensor:
        """What tracking alone predicts for ``obj_ids`` on frame ``t`` (for a correction)."""
        vision = self._vision(features, len(obj_ids))
        out = self._track_step(t, vision, self._memory_view(obj_ids), run_mem_encoder=False)
        return torch.clamp(self._fill_holes(out["pred_masks"]), -32.0, 32.0)

    def _encode_prompts(
        self, prompts: list[Prompt], video_hw: tuple[int, int]
    ) -> tuple[dict | None, torch.Tensor | None]:
        """Prompts of one form -> SAM 2 ``point_inputs`` (coords (B, N, 2) float32, labels
        (B, N) int32) or ``mask_inputs`` (B, 1, S, S) float32 at the model's resolution."""
        encoded = [self._encode_prompt(prompt, video_hw) for prompt in prompts]
        if encoded[0][1] is not None:
            return None, torch.cat([mask for _, mask in encoded])
        point_inputs = {
            key: torch.cat([points[key] for points, _ in encoded])
            for key in ("point_coords", "point_labels")
        }
        return point_inputs, None

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

    def _results(
        self,
        obj_ids: list[int],
        logits: torch.Tensor,
        entries: list[MemoryEntry],
        features: _FrameFeatures,
    ) -> dict[int, ObjectResult]:
        """One ``ObjectResult`` per object from the batch's (B, 1, h, w) low-res logits."""
        logits = logits.float()
        video_res = F.interpolate(
            logits, size=features.video_hw, mode="bilinear", align_corners=False
        )
        masks = (video_res[:, 0] > 0).cpu().numpy()
        return {
            obj_id: ObjectResult(
                obj_id,
                logits[i : i + 1],
                masks[i],
                float(entry.object_score_logits.float().item()),
            )
            for i, (obj_id, entry) in enumerate(zip(obj_ids, entries, strict=True))
        }
