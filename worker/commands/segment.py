"""``streamseg segment SOURCE --out DIR [prompts] [model flags]``: one video, in-process."""

from __future__ import annotations

import argparse
from pathlib import Path

from worker.commands.common import (
    ProgressBar,
    add_max_frames_flag,
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
        "write DIR/tracks.json and DIR/overlay.mp4. They appear only when the whole run "
        "succeeded; a failed or stopped run leaves neither, nor any temporary file.",
    )
    parser.add_argument("source", help="video file, URL, or folder of JPEG/PNG frames")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output folder, made if missing (earlier results in it are replaced)",
    )
    parser.add_argument(
        "--no-overlay", action="store_true", help="skip overlay.mp4 (default: write it)"
    )
    add_max_frames_flag(parser, "track only the first N frames, a preview")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar on stderr (default: shown)"
    )
    add_prompt_flags(parser)
    add_model_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from worker.engines.registry import load_engine
    from worker.pipeline.output_dir import removed_if_failed
    from worker.pipeline.segment import SegmentRequest, checked_video, segment_video

    request = SegmentRequest(
        source=args.source,
        out_dir=args.out,
        prompts=prompts_from_args(args),
        write_overlay=not args.no_overlay,
        max_frames=args.max_frames,
    )
    with removed_if_failed(args.out), checked_video(request) as video:
        # output, video and prompts checked before the model loads; the video opened once
        engine = load_engine(tracker_settings(args), show_progress=not args.quiet)
        with ProgressBar("segment", enabled=not args.quiet) as bar:
            summary = segment_video(request, engine.make_tracker, engine.model, bar, video=video)
    print(
        f"segmented {summary.num_frames} frames, objects {summary.object_ids}, "
        f"{summary.fps:.1f} fps -> {', '.join(str(p) for p in summary.outputs)}"
    )
    return 0
