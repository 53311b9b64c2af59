"""``streamseg annotate INPUTS... --out DIR``: annotate a batch of videos, resumably.

INPUTS are video files, folders of videos, or image-sequence folders (DAVIS ``JPEGImages`` or
one of its sequences). Each video's prompts come from ``--prompts FILE`` (JSON or YAML, video
name -> the core's prompt list), ``--masks DIR`` (first-frame masks: ``DIR/<video>.png`` or a
DAVIS ``Annotations`` root) or ``--auto N`` (SAM 2's automatic masks on the first frame, the N
best). Each video goes to ``DIR/<video>/``; ``annotate-manifest.json`` is written last and a
rerun skips videos whose output it shows complete. A summary table closes the run; a video's
failure is reported in it and does not stop the others.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from jobs.errors import InputError
from worker.batch.exports import ExportKind, parse_exports
from worker.batch.inputs import Discovery, discover_inputs
from worker.batch.prompt_sources import FirstFrameMasks, PromptsFile, PromptSource
from worker.commands.common import add_model_flags, tracker_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "annotate",
        help="annotate folders of videos (prompts file, first-frame masks or --auto)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="video file, folder of videos, or image-sequence folder (or a folder of them)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output root folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", type=Path, metavar="FILE", help="JSON/YAML prompts file")
    source.add_argument("--masks", type=Path, metavar="DIR", help="first-frame mask folder")
    source.add_argument("--auto", type=int, metavar="N", help="automatic masks: keep N objects")
    choices = ", ".join(kind.value for kind in ExportKind)
    parser.add_argument(
        "--export",
        action="append",
        default=[],
        metavar="LIST",
        help=f"comma-separated, repeatable: {choices}, all (default: tracks,davis)",
    )
    parser.add_argument("--max-frames", type=int, help="stop each video after N frames")
    parser.add_argument("--force", action="store_true", help="rerun videos already complete")
    parser.add_argument("--queue", action="store_true", help="submit one job per video")
    parser.add_argument("--redis", metavar="URL", help="with --queue: Redis URL")
    parser.add_argument("--queue-name", metavar="NAME", help="with --queue: queue name")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    _add_auto_flags(parser)
    add_model_flags(parser)
    parser.set_defaults(handler=run)


def _add_auto_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--auto (SAM 2 automatic mask generator)")
    group.add_argument(
        "--auto-points-per-side", type=int, default=32, metavar="N", help="grid (default 32)"
    )
    group.add_argument(
        "--auto-iou-thresh", type=float, default=0.8, metavar="X", help="min predicted IoU"
    )
    group.add_argument(
        "--auto-stability-thresh", type=float, default=0.95, metavar="X", help="min stability"
    )
    group.add_argument(
        "--auto-min-area", type=int, default=0, metavar="PIXELS", help="drop smaller masks"
    )


def run(args: argparse.Namespace) -> int:
    from worker.batch.driver import run_batch
    from worker.batch.progress import BatchProgress
    from worker.batch.runner import BatchOptions, VideoRunner, problem_results
    from worker.engines import load_engine

    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    options = BatchOptions(args.out, parse_exports(args.export), args.max_frames, args.force)
    discovery = discover_inputs(args.inputs)
    if args.queue:
        return _run_queue(args, discovery, options)
    file_source = _file_source(args)  # bad prompt files fail before the model loads
    settings = tracker_settings(args)
    if args.auto is not None:
        settings = _auto_model(settings)
    if not discovery.videos:  # nothing to run: no model to load
        return _report(list(problem_results(discovery, file_source)))
    engine = load_engine(settings, show_progress=not args.quiet)
    source = file_source or _auto_source(args, settings)
    runner = VideoRunner(engine, source, options)
    with BatchProgress(enabled=not args.quiet) as progress:
        results = list(run_batch(discovery, runner, progress))
    return _report(results)


def _report(results) -> int:
    from worker.batch.summary import exit_code, format_summary

    print(format_summary(results))
    code = exit_code(results)
    if code == 130:
        print("streamseg: interrupted; rerun the same command to finish", file=sys.stderr)
    return code


def _file_source(args: argparse.Namespace) -> PromptSource | None:
    if args.prompts is not None:
        return PromptsFile.load(args.prompts)
    if args.masks is not None:
        return FirstFrameMasks(args.masks)
    return None


def _auto_model(settings):
    """``settings`` with the SAM 2 model ``--auto`` runs on (``auto`` resolved, never lite)."""
    from worker.engines import LITE, choose_model

    settings = replace(settings, model=choose_model(settings))
    if settings.model == LITE:
        raise InputError(
            "--auto needs a SAM 2 model (the 'lite' model has no mask generator): "
            "pass --model NAME or --checkpoint PATH"
        )
    return settings


def _auto_source(args: argparse.Namespace, settings) -> PromptSource:
    from configs.models import get_model_spec
    from worker.batch.auto import AutoPrompts, AutoSettings
    from worker.checkpoints import resolve_checkpoint
    from worker.sam2_model import cached_model

    spec = get_model_spec(settings.model)
    checkpoint = resolve_checkpoint(spec, settings.checkpoint, settings.cache_dir, False)
    loaded = cached_model(spec, checkpoint, settings.image_size, settings.device)  # engine's
    auto = AutoSettings(
        num_objects=args.auto,
        points_per_side=args.auto_points_per_side,
        pred_iou_thresh=args.auto_iou_thresh,
        stability_score_thresh=args.auto_stability_thresh,
        min_area=args.auto_min_area,
    )
    return AutoPrompts(loaded, auto)


def _run_queue(args: argparse.Namespace, discovery: Discovery, options) -> int:
    from configs.settings import load_settings
    from worker.batch.progress import QueueProgress
    from worker.batch.queued import QueuedBatch, QueueModel, run_queued

    try:
        from jobs.queue import JobQueue
    except ModuleNotFoundError as error:
        if error.name not in ("jobs.queue", "redis", "rq"):
            raise
        raise InputError("--queue is not available in this installation") from None
    if args.auto is not None:
        raise InputError("--auto makes its masks locally: run it without --queue")
    if args.device:
        raise InputError("--device is chosen by each worker, not per job")
    source = _file_source(args)
    queue = JobQueue.connect(load_settings().queue, args.redis, args.queue_name)
    model = QueueModel(args.model, args.checkpoint, args.image_size, args.offload_memory)
    batch = QueuedBatch(queue, source, options, model)
    with QueueProgress(enabled=not args.quiet) as progress:
        results = list(run_queued(discovery, batch, progress))
    return _report(results)
