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
from typing import TYPE_CHECKING

from configs.errors import InputError
from configs.settings import DEFAULT_JOB_QUEUE, DEFAULT_REDIS_URL
from worker.commands.common import (
    add_max_frames_flag,
    add_model_flags,
    positive_int,
    tracker_settings,
)

if TYPE_CHECKING:  # these load numpy, PyAV and YAML: the handler imports them, not --help
    from worker.runtimes.batch.inputs import Discovery
    from worker.runtimes.batch.prompt_sources import PromptSource

# worker.runtimes.batch.exports.ExportKind's values and DEFAULT_EXPORTS, for the help text only (a
# test keeps them equal; importing that module would load numpy for --help)
HELP_EXPORT_KINDS = ("tracks", "overlay", "davis", "ytvis", "cvat", "mot")
HELP_DEFAULT_EXPORTS = ("tracks", "davis")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "annotate",
        help="annotate folders of videos (prompts file, first-frame masks or --auto)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="video file, folder of videos, or image-sequence folder (or a folder of them)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output root folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--prompts",
        type=Path,
        metavar="FILE",
        help="prompts file, JSON or YAML (.yaml/.yml): video name -> prompt list",
    )
    source.add_argument(
        "--masks", type=Path, metavar="DIR", help="first-frame mask folder (DIR/<video>.png)"
    )
    source.add_argument(
        "--auto", type=positive_int, metavar="N", help="automatic masks: keep the N best"
    )
    parser.add_argument(
        "--export",
        action="append",
        default=[],
        metavar="LIST",
        help=f"comma-separated, repeatable: {', '.join(HELP_EXPORT_KINDS)}, all "
        f"(default: {','.join(HELP_DEFAULT_EXPORTS)})",
    )
    add_max_frames_flag(parser, "stop each video after N frames")
    parser.add_argument(
        "--force", action="store_true", help="rerun videos already complete (default: skip)"
    )
    parser.add_argument(
        "--queue", action="store_true", help="submit one job per video (default: run here)"
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help=f"with --queue: Redis URL (default: $STREAMSEG_REDIS_URL, else {DEFAULT_REDIS_URL})",
    )
    parser.add_argument(
        "--queue-name",
        metavar="NAME",
        help=f"with --queue: queue name (default: $STREAMSEG_QUEUE, else {DEFAULT_JOB_QUEUE})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display (default: shown)")
    _add_auto_flags(parser)
    add_model_flags(parser)
    parser.set_defaults(handler=run)


def _add_auto_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--auto (SAM 2 automatic mask generator)")
    group.add_argument(
        "--auto-points-per-side",
        type=positive_int,
        default=32,
        metavar="N",
        help="an N x N grid of point prompts (default: %(default)s)",
    )
    group.add_argument(
        "--auto-iou-thresh",
        type=float,
        default=0.8,
        metavar="X",
        help="keep masks whose predicted IoU is at least X (default: %(default)s)",
    )
    group.add_argument(
        "--auto-stability-thresh",
        type=float,
        default=0.95,
        metavar="X",
        help="keep masks whose stability score is at least X (default: %(default)s)",
    )
    group.add_argument(
        "--auto-min-area",
        type=int,
        default=0,
        metavar="PIXELS",
        help="drop masks smaller than this (default: %(default)s, keep all)",
    )


def run(args: argparse.Namespace) -> int:
    from worker.engines.registry import load_engine
    from worker.pipeline.output_dir import check_output_folder
    from worker.runtimes.batch.driver import run_batch
    from worker.runtimes.batch.exports import parse_exports
    from worker.runtimes.batch.inputs import discover_inputs
    from worker.runtimes.batch.progress import BatchProgress
    from worker.runtimes.batch.runner import BatchOptions, VideoRunner, problem_results

    options = BatchOptions(args.out, parse_exports(args.export), args.max_frames, args.force)
    discovery = discover_inputs(args.inputs)
    if args.queue:
        return _run_queue(args, discovery, options)
    check_output_folder(args.out)  # one line now, not one failure per video later
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
    from worker.runtimes.batch.summary import exit_code, format_summary

    print(format_summary(results))
    code = exit_code(results)
    if code == 130:
        print("streamseg: interrupted; rerun the same command to finish", file=sys.stderr)
    return code


def _file_source(args: argparse.Namespace) -> PromptSource | None:
    from worker.runtimes.batch.prompt_sources import FirstFrameMasks, PromptsFile

    if args.prompts is not None:
        return PromptsFile.load(args.prompts)
    if args.masks is not None:
        return FirstFrameMasks(args.masks)
    return None


def _auto_model(settings):
    """``settings`` with the SAM 2 model ``--auto`` runs on (``auto`` resolved, never lite)."""
    from worker.engines.registry import LITE, choose_model

    settings = replace(settings, model=choose_model(settings))
    if settings.model == LITE:
        raise InputError(
            "--auto needs a SAM 2 model (the 'lite' model has no mask generator): "
            "pass --model NAME or --checkpoint PATH"
        )
    return settings


def _auto_source(args: argparse.Namespace, settings) -> PromptSource:
    from configs.models import get_model_spec
    from worker.engines.sam2video.checkpoints import resolve_checkpoint
    from worker.engines.sam2video.model import cached_model
    from worker.runtimes.batch.auto import AutoPrompts, AutoSettings

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
    from worker.runtimes.batch.progress import QueueProgress
    from worker.runtimes.batch.queued import QueuedBatch, QueueModel, run_queued
    from worker.runtimes.stopping import StopRequest

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
    with QueueProgress(enabled=not args.quiet) as progress, StopRequest() as stop:
        results = list(run_queued(discovery, batch, progress, stop))
    return _report(results)
