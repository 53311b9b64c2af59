"""``streamseg demo``: segment a clip from its first-frame mask, no network or GPU needed.

Without ``--video`` it makes a synthetic sample clip with exact ground truth, segments it and
prints the J&F it reached. With ``--video PATH --mask PNG`` it runs on the user's own clip.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from worker.commands.common import ProgressBar, add_model_flags, tracker_settings

if TYPE_CHECKING:
    import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="segment a sample clip (or your own) from its first-frame mask",
        description="Make a sample clip with known ground truth, segment it from the first "
        "frame's mask, write tracks.json and overlay.mp4 and print the J&F reached.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("demo-out"), metavar="DIR",
        help="output folder (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--video", metavar="PATH", help="your own clip instead of the sample (needs --mask)"
    )
    parser.add_argument(
        "--mask", type=Path, metavar="PNG", help="first-frame mask image for --video"
    )
    add_model_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from configs.errors import InputError
    from jobs.output_names import OUTPUT_FILES, OVERLAY_FILE, TRACKS_FILE
    from jobs.prompts import Prompt, load_mask
    from worker.pipeline.output_dir import prepare_output_dir
    from worker.video.demo_clip import write_sample_video

    if (args.video is None) != (args.mask is None):
        raise InputError("--video and --mask go together")
    prepare_output_dir(args.out, OUTPUT_FILES)
    truth = None
    if args.video is None:
        video = args.out / "sample.mp4"
        truth = write_sample_video(video)
        Image.fromarray(truth[0].astype(np.uint8) * 255).save(args.out / "sample-mask.png")
        prompt = Prompt(1, 0, mask=truth[0])
    else:
        video, prompt = args.video, Prompt(1, 0, mask=load_mask(args.mask))
    summary = _segment(args, str(video), prompt)
    print(f"outputs: {args.out / TRACKS_FILE} and {args.out / OVERLAY_FILE}")
    print(f"{summary.num_frames} frames at {summary.fps:.1f} fps")
    if truth is not None:
        jf = _score(args.out / TRACKS_FILE, truth)
        print(f"J&F against the sample's ground truth: {jf:.3f}")
    return 0


def _segment(args: argparse.Namespace, video: str, prompt):
    from worker.engines.registry import load_engine
    from worker.pipeline.segment import SegmentRequest, segment_video

    engine = load_engine(tracker_settings(args))
    print(f"model: {engine.name}", file=sys.stderr)
    request = SegmentRequest(source=video, out_dir=args.out, prompts=[prompt])
    with ProgressBar("demo") as bar:
        return segment_video(request, engine.make_tracker, engine.model, bar)


def _score(tracks_path: Path, truth: list[np.ndarray]) -> float:
    """DAVIS J&F of object 1 against the ground truth (first and last frames excluded)."""
    from jobs.metrics import evaluate_sequence
    from jobs.tracks import read_tracks

    tracks = read_tracks(tracks_path)
    predicted = (tracks.masks_at(t) for t in range(len(truth)))
    scores = evaluate_sequence(predicted, ({1: m} for m in truth), name="sample")
    return float(scores.jf_mean)
