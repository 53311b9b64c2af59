"""``streamseg submit | status | result | cancel``: segmentation jobs on a Redis queue."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from worker.commands.common import add_model_flags, add_prompt_flags


def register(subparsers: argparse._SubParsersAction) -> None:
    from configs.settings import load_settings

    settings = load_settings().queue
    submit = subparsers.add_parser(
        "submit",
        help="queue a video for segmentation by `streamseg worker`s",
        description="Validate a job and put it on the Redis queue; prints the job id. "
        "Outputs (tracks.json, overlay.mp4, then manifest.json) go to --out, a folder or an "
        "fsspec URL; paths are as the workers see them. The source is not opened here: the "
        "worker checks it, the output and the checkpoint before the first frame.",
    )
    submit.add_argument("source", help="video file, image folder, http(s) or fsspec URL")
    submit.add_argument("--out", required=True, help="output folder or URL (s3://, memory://)")
    submit.add_argument(
        "--no-overlay", action="store_true", help="skip overlay.mp4 (default: written)"
    )
    submit.add_argument(
        "--no-tracks", action="store_true", help="skip tracks.json (default: written)"
    )
    submit.add_argument(
        "--max-frames", type=int, metavar="N", help="stop after N frames (default: the whole video)"
    )
    submit.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="frames between crash-resume saves (default: "
        f"{settings.checkpoint_every}, from $STREAMSEG_CHECKPOINT_EVERY)",
    )
    submit.add_argument(
        "--timeout",
        type=int,
        metavar="S",
        help="seconds one attempt may take "
        f"(default: {settings.job_timeout_base_s} + "
        f"{settings.job_timeout_per_frame_s:g} per frame, once the worker knows "
        "the length)",
    )
    submit.add_argument("--job-id", help="job id: letters, digits, _ and - (default: random)")
    submit.add_argument(
        "--wait",
        action="store_true",
        help="follow the job until it ends; exit 1 unless it finished "
        "(default: print the id and return)",
    )
    submit.add_argument(
        "--quiet",
        action="store_true",
        help="with --wait: no progress bar (default: shown on stderr)",
    )
    add_prompt_flags(submit)
    add_model_flags(submit)
    _add_queue_flags(submit, settings)
    submit.set_defaults(handler=run_submit)

    for name, handler, text in (
        ("status", run_status, "show a job's state, progress and failure reason"),
        ("result", run_result, "list a finished job's output files (checksums verified)"),
        ("cancel", run_cancel, "cancel a queued job or stop a running one between frames"),
    ):
        parser = subparsers.add_parser(name, help=text, description=text)
        parser.add_argument("job", help="job id (as printed by streamseg submit)")
        parser.add_argument(
            "--json", action="store_true", help="machine-readable output (default: text)"
        )
        _add_queue_flags(parser, settings)
        parser.set_defaults(handler=handler)


def _add_queue_flags(parser: argparse.ArgumentParser, settings) -> None:
    group = parser.add_argument_group("queue")
    group.add_argument(
        "--redis",
        metavar="URL",
        help=f"Redis URL (default: {settings.redis_url_shown}, from $STREAMSEG_REDIS_URL)",
    )
    group.add_argument(
        "--queue",
        metavar="NAME",
        help=f"queue name (default: {settings.queue_name}, from $STREAMSEG_QUEUE)",
    )


def _open_queue(args: argparse.Namespace):
    from configs.settings import load_settings
    from jobs.queue import JobQueue

    return JobQueue.connect(load_settings().queue, args.redis, args.queue)


def _local(text: str) -> str:
    """Local paths made absolute (workers run elsewhere); URLs as given."""
    from jobs.urls import is_url

    return text if is_url(text) else os.path.abspath(os.path.expanduser(text))


def build_spec(args: argparse.Namespace):
    from configs.errors import InputError
    from jobs.spec import parse_spec, prompt_to_spec
    from worker.commands.common import prompts_from_args

    if args.device:
        raise InputError("--device is chosen by each worker, not per job")
    outputs = [
        k for k, skip in (("tracks", args.no_tracks), ("overlay", args.no_overlay)) if not skip
    ]
    prompts = [prompt_to_spec(p).model_dump(mode="json") for p in prompts_from_args(args)]
    if not prompts:
        raise InputError("no prompts given: add --point, --box, --mask or --prompts")
    return parse_spec(
        {
            "source": _local(args.source),
            "output": _local(args.out),
            "prompts": prompts,
            "model": args.model,
            "checkpoint": str(Path(args.checkpoint).resolve()) if args.checkpoint else None,
            "image_size": args.image_size,
            "outputs": outputs,
            "max_frames": args.max_frames,
            "checkpoint_every": args.checkpoint_every,
            "offload_memory": args.offload_memory,
            "timeout_s": args.timeout,
        }
    )


def run_submit(args: argparse.Namespace) -> int:
    queue = _open_queue(args)
    view = queue.submit(build_spec(args), job_id=args.job_id)
    print(view.id)
    if not args.wait:
        return 0
    final = _follow(queue, view.id, quiet=args.quiet)
    if final.state != "finished":
        print(_describe(final), file=sys.stderr)
        return 1
    for url in queue.result(final.id).urls():
        print(url)
    return 0


def _follow(queue, job_id: str, quiet: bool):
    from tqdm import tqdm

    with tqdm(unit="frame", desc=job_id[:8], disable=quiet, file=sys.stderr) as bar:

        def show(view) -> None:
            progress = view.meta.progress
            bar.total, bar.n = progress.total, progress.frame  # a resumed attempt replays
            eta = "?" if progress.eta_s is None else f"{progress.eta_s:.0f}s"
            bar.set_postfix(state=view.state, fps=f"{progress.fps:.1f}", eta=eta)

        return queue.follow(job_id, show)


def _describe(view) -> str:
    progress, error = view.meta.progress, view.meta.error
    total = "?" if progress.total is None else progress.total
    lines = [f"job {view.id}: {view.state}" + (f" on {view.worker}" if view.worker else "")]
    if view.spec is not None:
        lines.append(f"  {view.spec.source} -> {view.spec.output}")
    if progress.attempt:
        resumed = "" if progress.resumed_from is None else f", resumed at {progress.resumed_from}"
        lines.append(
            f"  frame {progress.frame}/{total}, {progress.fps:.1f} fps, "
            f"attempt {progress.attempt}{resumed}"
        )
    meta = view.meta
    if meta.interruptions or meta.failures:
        left = "" if view.retries_left is None else f"; {view.retries_left} retries left"
        lines.append(
            f"  interrupted {meta.interruptions}x (warm shutdowns, no retry spent); "
            f"failed {meta.failures}x (transient {meta.transient_failures}, "
            f"worker lost {meta.lost}){left}"
        )
    if error is not None and view.state != "finished":
        lines.append(
            f"  {'cancelled' if view.cancelled else 'reason'} ({error.kind}): {error.message}"
        )
    elif view.cancelled:
        lines.append("  cancelled before it started")
    return "\n".join(lines)


def run_status(args: argparse.Namespace) -> int:
    view = _open_queue(args).get(args.job)
    if args.json:
        document = {
            "id": view.id,
            "state": view.state,
            "worker": view.worker,
            "retries_left": view.retries_left,
            "spec": view.spec.model_dump(mode="json") if view.spec else None,
            **view.meta.model_dump(mode="json"),
        }
        print(json.dumps(document, indent=1))
    else:
        print(_describe(view))
    return 0


def run_result(args: argparse.Namespace) -> int:
    result = _open_queue(args).result(args.job)
    if args.json:
        print(result.manifest.model_dump_json(indent=1))
    else:
        for url in result.urls():
            print(url)
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    view = _open_queue(args).cancel(args.job)
    print(f"job {view.id}: cancel requested ({view.state})")
    return 0
