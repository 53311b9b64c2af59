"""``streamseg eval PRED GT [--json OUT]``: DAVIS J&F of predictions against ground truth.

GT is either one sequence's annotation folder (``00000.png``...) or a folder of such sequence
folders (a DAVIS ``Annotations`` root). PRED is, per sequence, a folder of PNG masks, a
``tracks.json`` file, or a folder holding ``tracks.json``; with a GT root, PRED is a folder
holding one such prediction per sequence, named like the GT sequence folders.

A tracks.json is scored as its DAVIS PNG export would be: one label per pixel, where masks
overlap the object with the highest score keeps the pixel (ties: the lower id).

Frames are matched by index (PNG stem or tracks.json frame number). As in the official DAVIS
semi-supervised evaluation, the first and last frames are not scored, so predictions for them
may be missing; any other missing prediction frame is an error.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from configs.errors import InputError

if TYPE_CHECKING:  # numpy and OpenCV: loaded by the handler, not by --help
    import numpy as np

    from jobs.metrics import EvalReport, SequenceScores
    from jobs.tracks import Tracks

# jobs.metrics.DEFAULT_BOUND_TH, for the help text (a test keeps the two equal)
HELP_DEFAULT_BOUND_TH = 0.008


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score predicted masks against DAVIS-style ground truth (J&F)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("pred", type=Path, help="PNG mask folder, tracks.json, or their root")
    parser.add_argument("gt", type=Path, help="annotation folder of a sequence, or their root")
    parser.add_argument(
        "--json",
        dest="json_out",
        type=Path,
        metavar="FILE",
        help="also write the report here as JSON (default: the table only)",
    )
    parser.add_argument(
        "--bound-th",
        type=float,
        metavar="X",
        help="boundary tolerance: fraction of the image diagonal (<1) or pixels (>=1) "
        f"(default: {HELP_DEFAULT_BOUND_TH}, as the DAVIS benchmark)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from jobs.metrics import DEFAULT_BOUND_TH

    bound_th = DEFAULT_BOUND_TH if args.bound_th is None else args.bound_th
    report = evaluate_paths(args.pred, args.gt, bound_th)
    print(report.format_table())
    if args.json_out is not None:
        try:
            args.json_out.write_text(report.to_json() + "\n")
        except OSError as error:
            raise InputError(f"cannot write {args.json_out}: {error}") from error
    return 0


def evaluate_paths(pred: Path, gt: Path, bound_th: float | None = None) -> EvalReport:
    """Score one sequence or every sequence of a ground-truth root (see the module docstring);
    ``bound_th`` None is ``jobs.metrics.DEFAULT_BOUND_TH``."""
    from jobs.metrics import DEFAULT_BOUND_TH, EvalReport

    bound_th = DEFAULT_BOUND_TH if bound_th is None else bound_th
    if not gt.is_dir():
        raise InputError(f"ground truth {gt} is not a folder")
    if not pred.exists():
        raise InputError(f"prediction {pred} does not exist")
    if _has_pngs(gt):
        return EvalReport((_evaluate_one(gt.name, pred, gt, bound_th),), bound_th)
    sequences = sorted(d for d in gt.iterdir() if d.is_dir() and _has_pngs(d))
    if not sequences:
        raise InputError(f"{gt} holds neither PNG masks nor sequence folders of PNG masks")
    if not pred.is_dir():
        raise InputError(f"with a ground-truth root, prediction {pred} must be a folder")
    missing = [d.name for d in sequences if not (pred / d.name).exists()]
    if missing:
        raise InputError(f"no prediction in {pred} for sequences: {', '.join(missing)}")
    scores = [_evaluate_one(d.name, pred / d.name, d, bound_th) for d in sequences]
    return EvalReport(tuple(scores), bound_th)


def _has_pngs(folder: Path) -> bool:
    return any(p.suffix.lower() == ".png" for p in folder.iterdir())


def _evaluate_one(name: str, pred: Path, gt_dir: Path, bound_th: float) -> SequenceScores:
    from jobs.mask_io import list_mask_pngs, mask_png_shape, read_mask_png
    from jobs.metrics import evaluate_sequence

    gt_files = list_mask_pngs(gt_dir)
    shape = mask_png_shape(gt_files[0][1])  # every frame, predicted or not, must have it
    source = _prediction_source(pred)
    last = len(gt_files) - 1
    pred_frames = (
        source.masks(frame, 0 < position < last, shape)
        for position, (frame, _) in enumerate(gt_files)
    )
    gt_frames = (read_mask_png(path, shape) for _, path in gt_files)
    return evaluate_sequence(pred_frames, gt_frames, name=name, bound_th=bound_th)


class _Prediction(Protocol):
    def masks(self, frame: int, required: bool, shape: tuple[int, int]) -> dict[int, np.ndarray]:
        """``{obj_id: bool (H, W)}`` of one frame of size ``shape`` (H, W), else InputError;
        {} for a missing frame not required."""
        ...


@dataclass(frozen=True)
class _PngPrediction:
    files: dict[int, Path]
    where: Path

    def masks(self, frame: int, required: bool, shape: tuple[int, int]) -> dict[int, np.ndarray]:
        from jobs.mask_io import read_mask_png

        path = self.files.get(frame)
        if path is not None:
            return read_mask_png(path, shape)
        if required:
            raise InputError(f"{self.where} has no mask for frame {frame}")
        return {}


@dataclass(frozen=True)
class _TracksPrediction:
    tracks: Tracks
    where: Path

    def masks(self, frame: int, required: bool, shape: tuple[int, int]) -> dict[int, np.ndarray]:
        video = self.tracks.video
        if (video.height, video.width) != shape:
            raise InputError(
                f"{self.where} is of a {video.width}x{video.height} video, the ground truth "
                f"is {shape[1]}x{shape[0]}"
            )
        if frame < self.tracks.video.num_frames:
            return self.tracks.frame_masks(frame).one_label_per_pixel()
        if required:
            raise InputError(
                f"{self.where} has {self.tracks.video.num_frames} frames; frame {frame} is missing"
            )
        return {}


def _prediction_source(pred: Path) -> _Prediction:
    from jobs.mask_io import list_mask_pngs
    from jobs.output_names import TRACKS_FILE
    from jobs.tracks import read_tracks

    if pred.is_file() and pred.suffix.lower() == ".json":
        return _TracksPrediction(read_tracks(pred, finished=True), pred)
    if pred.is_dir() and (pred / TRACKS_FILE).is_file():
        tracks = read_tracks(pred / TRACKS_FILE, finished=True)
        return _TracksPrediction(tracks, pred / TRACKS_FILE)
    if pred.is_dir() and _has_pngs(pred):
        return _PngPrediction(dict(list_mask_pngs(pred)), pred)
    raise InputError(f"prediction {pred} is neither a tracks.json nor a folder of PNG masks")
