"""DAVIS video object segmentation metrics: region similarity J and boundary accuracy F.

Follows the official DAVIS 2017 evaluation (davisvideochallenge/davis2017-evaluation,
``davis2017/metrics.py``, ``davis2017/utils.py`` and ``davis2017/evaluation.py``):

* J is the Jaccard index of the binary masks; a frame where both masks are empty scores 1.
* F is the boundary F-measure: one-pixel boundary maps (``seg2bmap``) are matched by dilating
  each with a disk of radius ``ceil(bound_th * image diagonal)`` (``bound_th`` >= 1 is taken as
  a radius in pixels), precision/recall of matched boundary pixels give F.
* Per object, the per-frame scores become three statistics (``db_statistics``): mean, recall
  (fraction of frames scoring > 0.5) and decay (mean of the first of four overlapping frame bins
  minus the mean of the last).
* Semi-supervised protocol: the first frame (the prompt) and the last frame are left out of the
  statistics, exactly as ``evaluation.py`` slices ``all_gt_masks[:, 1:-1]``.
* Objects are the ids ``1..max id`` of the first ground-truth frame; id 255 is void and dropped
  by the readers, as the official loader sets it to background.
* Totals: a sequence's statistic is the mean over its objects; the overall statistic is the
  mean over every object of every sequence (the official global ``J-Mean`` etc.), and
  ``J&F = (J mean + F mean) / 2``.

One deliberate divergence: the official decay casts its bin bounds to ``uint8``, which wraps
for more than 256 evaluated frames; here they stay plain integers, identical up to 256 frames.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from configs.errors import InputError

DEFAULT_BOUND_TH = 0.008
_DIRECT_DILATION_MAX_RADIUS = 48  # 0.008 of a 4K diagonal is 36

Masks = Mapping[int, np.ndarray]


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """Jaccard index J of two masks; 1.0 when both are empty.

    Args:
        pred: bool (H, W) predicted mask (any dtype; non-zero is foreground).
        gt: bool (H, W) ground-truth mask, same shape.
    """
    pred, gt = _binary_pair(pred, gt)
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred & gt) / union


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a mask, offset half a pixel towards the origin.

    Args:
        seg: (H, W) mask; non-zero is foreground.

    Returns:
        bool (H, W): True where a pixel differs from its east, south or south-east neighbour
        (the last row and column compare only along the border; the corner is False).
    """
    seg = np.asarray(seg).astype(bool, copy=False)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def disk(radius: int) -> np.ndarray:
    """uint8 (2r+1, 2r+1) disk: 1 where x^2 + y^2 <= r^2 (as ``skimage.morphology.disk``)."""
    steps = np.arange(-radius, radius + 1)
    xs, ys = np.meshgrid(steps, steps)
    return (xs**2 + ys**2 <= radius**2).astype(np.uint8)


def check_bound_th(bound_th: float) -> float:
    """``bound_th`` if it is a usable tolerance (finite, >= 0), else a one-line InputError."""
    if not (isinstance(bound_th, (int, float)) and math.isfinite(bound_th) and bound_th >= 0):
        raise InputError(
            f"boundary tolerance must be a finite number >= 0 (a fraction of the diagonal "
            f"below 1, pixels from 1 on), got {bound_th}"
        )
    return float(bound_th)


def boundary_radius(shape: tuple[int, int], bound_th: float = DEFAULT_BOUND_TH) -> int:
    """Matching tolerance in pixels: ``bound_th`` itself if >= 1, else ceil(bound_th * diagonal).

    Capped at the image diagonal (rounded up): a wider disk matches nothing more, since every
    pixel is already within the diagonal of every other.
    """
    diagonal = math.hypot(shape[0], shape[1])
    bound_th = check_bound_th(bound_th)
    radius = bound_th if bound_th >= 1 else math.ceil(bound_th * diagonal)
    return int(min(radius, math.ceil(diagonal)))


def boundary_f_measure(
    pred: np.ndarray, gt: np.ndarray, bound_th: float = DEFAULT_BOUND_TH
) -> float:
    """Boundary F-measure of a predicted mask against the ground truth.

    Args:
        pred: bool (H, W) predicted mask.
        gt: bool (H, W) ground-truth mask, same shape.
        bound_th: tolerance as a fraction of the image diagonal (< 1) or in pixels (>= 1).

    Returns:
        F in [0, 1]; 1.0 when neither mask has a boundary, 0.0 when exactly one has none.
    """
    pred, gt = _binary_pair(pred, gt)
    radius = boundary_radius(pred.shape, bound_th)
    fg_boundary = seg2bmap(pred)
    gt_boundary = seg2bmap(gt)
    fg_dil = dilate_by_disk(fg_boundary, radius)
    gt_dil = dilate_by_disk(gt_boundary, radius)
    n_fg = np.count_nonzero(fg_boundary)
    n_gt = np.count_nonzero(gt_boundary)
    if n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_fg == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = np.count_nonzero(fg_boundary & gt_dil) / n_fg
        recall = np.count_nonzero(gt_boundary & fg_dil) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def dilate_by_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """bool (H, W): ``mask`` dilated by :func:`disk` of ``radius`` (``cv2.dilate``, as DAVIS).

    Past :data:`_DIRECT_DILATION_MAX_RADIUS` the same set comes from an exact Euclidean
    distance transform (a pixel is in it when some mask pixel is within ``radius``), whose cost
    does not grow with the radius: ``cv2.dilate`` with a disk of 980 px took minutes a frame.
    """
    mask = np.asarray(mask, dtype=bool)
    if radius <= _DIRECT_DILATION_MAX_RADIUS:
        return cv2.dilate(mask.astype(np.uint8), disk(radius)).astype(bool)
    if not mask.any():
        return np.zeros_like(mask)
    distance = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return distance * distance <= radius * radius + 0.5  # squared distances are integers


def _binary_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise InputError(
            f"prediction mask shape {pred.shape} does not match ground truth shape {gt.shape}"
        )
    return pred.astype(bool, copy=False), gt.astype(bool, copy=False)


@dataclass(frozen=True)
class Statistics:
    """Mean, recall (fraction of frames > 0.5) and decay of one per-frame score series."""

    mean: float
    recall: float
    decay: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Statistics:
        """``db_statistics`` of float (N,) per-frame scores; NaN for N == 0."""
        scores = np.asarray(values, dtype=np.float64)
        if scores.size == 0:
            return cls(math.nan, math.nan, math.nan)
        bounds = (np.round(np.linspace(1, scores.size, 5) + 1e-10) - 1).astype(np.int64)
        bins = [scores[bounds[i] : bounds[i + 1] + 1] for i in range(4)]
        return cls(
            mean=float(np.nanmean(scores)),
            recall=float(np.nanmean(scores > 0.5)),
            decay=float(np.nanmean(bins[0]) - np.nanmean(bins[3])),
        )

    @classmethod
    def average(cls, items: Sequence[Statistics]) -> Statistics:
        """Element-wise mean over several objects' statistics (NaN when empty)."""
        if not items:
            return cls(math.nan, math.nan, math.nan)
        return cls(
            mean=float(np.mean([s.mean for s in items])),
            recall=float(np.mean([s.recall for s in items])),
            decay=float(np.mean([s.decay for s in items])),
        )


@dataclass(frozen=True)
class ObjectScores:
    """Per-frame J and F of one object and their statistics.

    ``frames`` are the evaluated frame positions (first and last excluded), aligned with
    ``j_frames`` and ``f_frames``.
    """

    obj_id: int
    frames: tuple[int, ...]
    j_frames: tuple[float, ...]
    f_frames: tuple[float, ...]

    @property
    def j(self) -> Statistics:
        return Statistics.of(self.j_frames)

    @property
    def f(self) -> Statistics:
        return Statistics.of(self.f_frames)

    @property
    def jf_mean(self) -> float:
        return (self.j.mean + self.f.mean) / 2


@dataclass(frozen=True)
class SequenceScores:
    """Scores of every ground-truth object of one sequence."""

    name: str
    objects: tuple[ObjectScores, ...]

    @property
    def j(self) -> Statistics:
        return Statistics.average([o.j for o in self.objects])

    @property
    def f(self) -> Statistics:
        return Statistics.average([o.f for o in self.objects])

    @property
    def jf_mean(self) -> float:
        return (self.j.mean + self.f.mean) / 2


@dataclass(frozen=True)
class EvalReport:
    """Scores of one or more sequences; overall statistics average over all objects."""

    sequences: tuple[SequenceScores, ...]
    bound_th: float = DEFAULT_BOUND_TH

    @property
    def objects(self) -> tuple[ObjectScores, ...]:
        return tuple(o for s in self.sequences for o in s.objects)

    @property
    def overall(self) -> SequenceScores:
        """Every object of every sequence pooled, as the official totals do."""
        return SequenceScores("overall", self.objects)

    @property
    def j(self) -> Statistics:
        return self.overall.j

    @property
    def f(self) -> Statistics:
        return self.overall.f

    @property
    def jf_mean(self) -> float:
        return self.overall.jf_mean

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text (NaN written as null)."""
        return json.dumps(self._as_json(), indent=indent)

    def format_table(self) -> str:
        """A fixed-width text table: one row per sequence (and per object when several)."""
        name_width = max([len("Overall"), *(len(s.name) + 4 for s in self.sequences)])
        lines = [f"{'Sequence':<{name_width}}" + "".join(f"{c:>10}" for c in _COLUMNS)]
        for seq in self.sequences:
            lines.append(_table_row(seq.name, name_width, seq.jf_mean, seq.j, seq.f))
            if len(seq.objects) > 1:
                for obj in seq.objects:
                    label = f"  #{obj.obj_id}"
                    lines.append(_table_row(label, name_width, obj.jf_mean, obj.j, obj.f))
        lines.append(_table_row("Overall", name_width, self.jf_mean, self.j, self.f))
        return "\n".join(lines)

    def _as_json(self) -> dict[str, object]:
        return {
            "protocol": "DAVIS semi-supervised; first and last frames excluded",
            "bound_th": self.bound_th,
            "overall": _summary_json(self.jf_mean, self.j, self.f),
            "sequences": [_sequence_json(s) for s in self.sequences],
        }


_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def _table_row(label: str, width: int, jf: float, j: Statistics, f: Statistics) -> str:
    values = (jf, j.mean, j.recall, j.decay, f.mean, f.recall, f.decay)
    return f"{label:<{width}}" + "".join(f"{v:>10.4f}" for v in values)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def _summary_json(jf: float, j: Statistics, f: Statistics) -> dict[str, float | None]:
    return {
        "J&F-Mean": _finite(jf),
        "J-Mean": _finite(j.mean),
        "J-Recall": _finite(j.recall),
        "J-Decay": _finite(j.decay),
        "F-Mean": _finite(f.mean),
        "F-Recall": _finite(f.recall),
        "F-Decay": _finite(f.decay),
    }


def _sequence_json(seq: SequenceScores) -> dict[str, object]:
    objects = [
        {
            "id": o.obj_id,
            **_summary_json(o.jf_mean, o.j, o.f),
            "frames": list(o.frames),
            "J": [_finite(v) for v in o.j_frames],
            "F": [_finite(v) for v in o.f_frames],
        }
        for o in seq.objects
    ]
    return {"name": seq.name, **_summary_json(seq.jf_mean, seq.j, seq.f), "objects": objects}


def evaluate_sequence(
    pred_frames: Iterable[Masks],
    gt_frames: Iterable[Masks],
    name: str = "",
    bound_th: float = DEFAULT_BOUND_TH,
) -> SequenceScores:
    """Score a predicted sequence against its ground truth, streaming frame by frame.

    Args:
        pred_frames: per frame, ``{obj_id: bool (H, W) mask}``; an absent id is an empty mask.
        gt_frames: per frame, ``{obj_id: bool (H, W) mask}``; same number of frames, aligned
            by position. The objects are ids ``1..max id`` of the first ground-truth frame.
        name: sequence name carried into the scores.
        bound_th: boundary tolerance for F (see :func:`boundary_f_measure`).

    Raises:
        InputError: lengths differ, fewer than 3 frames, unknown predicted ids, shape mismatch,
            a tolerance that is negative or not finite.
    """
    check_bound_th(bound_th)  # before any frame is read
    obj_ids: tuple[int, ...] | None = None
    pending: tuple[int, Masks, Masks] | None = None
    scored: dict[int, list[tuple[int, float, float]]] = {}
    for position, (pred, gt) in enumerate(_zip_frames(pred_frames, gt_frames, name)):
        if obj_ids is None:
            obj_ids = tuple(range(1, max(gt, default=0) + 1))
            scored = {obj_id: [] for obj_id in obj_ids}
            if not obj_ids:
                raise InputError(f"sequence {name!r}: the first ground-truth frame has no object")
        _check_pred_ids(pred, obj_ids, name, position)
        if pending is not None and pending[0] > 0:
            _score_frame(*pending, scored, bound_th)
        pending = (position, pred, gt)
    if pending is None or pending[0] < 2:
        raise InputError(f"sequence {name!r}: needs at least 3 frames (first and last are skipped)")
    return SequenceScores(name=name, objects=tuple(_object_scores(scored)))


def _zip_frames(
    pred_frames: Iterable[Masks], gt_frames: Iterable[Masks], name: str
) -> Iterator[tuple[Masks, Masks]]:
    sentinel = object()
    pred_iter, gt_iter = iter(pred_frames), iter(gt_frames)
    while True:
        pred, gt = next(pred_iter, sentinel), next(gt_iter, sentinel)
        if pred is sentinel and gt is sentinel:
            return
        if pred is sentinel or gt is sentinel:
            raise InputError(f"sequence {name!r}: prediction and ground truth differ in length")
        yield pred, gt  # type: ignore[misc]


def _check_pred_ids(pred: Masks, obj_ids: tuple[int, ...], name: str, position: int) -> None:
    unknown = sorted(set(pred) - set(obj_ids))
    if unknown:
        raise InputError(
            f"sequence {name!r} frame {position}: predicted object ids {unknown} are not "
            f"ground-truth objects {list(obj_ids)}"
        )


def _score_frame(
    position: int,
    pred: Masks,
    gt: Masks,
    scored: dict[int, list[tuple[int, float, float]]],
    bound_th: float,
) -> None:
    any_mask = next(iter({**pred, **gt}.values()), None)
    for obj_id, rows in scored.items():
        if any_mask is None:  # both empty everywhere: J = F = 1 whatever the frame size
            rows.append((position, 1.0, 1.0))
            continue
        empty = np.zeros(np.shape(any_mask), dtype=bool)
        pred_mask = pred.get(obj_id, empty)
        gt_mask = gt.get(obj_id, empty)
        j = region_similarity(pred_mask, gt_mask)
        f = boundary_f_measure(pred_mask, gt_mask, bound_th)
        rows.append((position, j, f))


def _object_scores(scored: dict[int, list[tuple[int, float, float]]]) -> Iterator[ObjectScores]:
    for obj_id, rows in scored.items():
        yield ObjectScores(
            obj_id=obj_id,
            frames=tuple(r[0] for r in rows),
            j_frames=tuple(r[1] for r in rows),
            f_frames=tuple(r[2] for r in rows),
        )
