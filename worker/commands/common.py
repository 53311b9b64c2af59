"""Flags shared by every command that runs a model or takes prompts."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from configs.models import model_names
from configs.settings import TrackerSettings, load_settings
from jobs.prompts import Prompt, load_prompt_file, merge_prompts, parse_flag
from worker.engines import AUTO, LITE


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=AUTO,
        metavar="NAME",
        help=f"one of {', '.join(model_names() + [LITE])} (default: SAM 2 if a checkpoint is "
        "given or cached, else lite)",
    )
    group.add_argument("--checkpoint", type=Path, help="official SAM 2 checkpoint file")
    group.add_argument("--image-size", type=int, help="model input size (smaller = faster)")
    group.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda if present)")
    group.add_argument(
        "--offload-memory", action="store_true", help="keep the memory bank in host RAM"
    )


def tracker_settings(args: argparse.Namespace) -> TrackerSettings:
    base = load_settings().tracker
    return replace(
        base,
        model=args.model,
        checkpoint=args.checkpoint,
        image_size=args.image_size,
        device=args.device,
        offload_memory_to_cpu=args.offload_memory or base.offload_memory_to_cpu,
    )


def add_prompt_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("prompts (pixel coordinates of the source frame)")
    flag = {"action": "append", "default": []}
    group.add_argument("--point", metavar="OBJ:X,Y[@FRAME]", **flag)
    group.add_argument("--neg-point", metavar="OBJ:X,Y[@FRAME]", **flag)
    group.add_argument("--box", metavar="OBJ:X0,Y0,X1,Y1[@FRAME]", **flag)
    group.add_argument("--mask", metavar="OBJ:PATH.png[@FRAME]", **flag)
    group.add_argument("--prompts", type=Path, metavar="FILE.json", help="prompts file")


def prompts_from_args(args: argparse.Namespace) -> list[Prompt]:
    prompts: list[Prompt] = []
    for kind in ("point", "neg_point", "box", "mask"):
        prompts += [parse_flag(kind.replace("_", "-"), text) for text in getattr(args, kind)]
    if args.prompts is not None:
        prompts += load_prompt_file(args.prompts)
    return merge_prompts(prompts)
