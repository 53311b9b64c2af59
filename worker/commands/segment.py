"""``streamseg segment SOURCE --out DIR [prompts] [model flags]``: one video, in-process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from worker.commands.common import (
    add_model_flags,
    add_prompt_flags,
    prompts_from_args,
    tracker_settings,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment and track objects in one video (no Redis needed)",
        description="Track prompted objects through a video file, URL or image folder and "
        "write DIR/tracks.json and DIR/overlay.mp4.",
    )
    parser.add_argument("source", help="video file, URL, or folder of JPEG/PNG frames")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4")
    parser.add_argument("--max-frames", type=int, help="stop after N frames (a preview)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_prompt_flags(parser)
    add_model_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from worker.engines import load_engine
    from worker.pipeline import SegmentRequest, segment_video

    prompts = prompts_from_args(args)
    engine = load_engine(tracker_settings(args), show_progress=not args.quiet)
    request = SegmentRequest(
        source=args.source,
        out_dir=args.out,
        prompts=prompts,
        write_overlay=not args.no_overlay,
        max_frames=args.max_frames,
    )
    with tqdm(unit="frame", desc="segment", disable=args.quiet, file=sys.stderr) as bar:

        def on_progress(progress) -> None:
            bar.total = progress.total
            bar.update(progress.frame - bar.n)
            bar.set_postfix(fps=f"{progress.fps:.1f}")

        summary = segment_video(request, engine.make_tracker, engine.meta, on_progress)
    print(
        f"segmented {summary.num_frames} frames, objects {summary.object_ids}, "
        f"{summary.fps:.1f} fps -> {', '.join(str(p) for p in summary.outputs)}"
    )
    return 0
