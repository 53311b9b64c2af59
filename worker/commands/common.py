"""Flags shared by every command that runs a model or takes prompts.

Only light modules are imported here: every command's parser is built for ``--help``, which
must not wait for torch, numpy or pydantic. Prompts are parsed in the handlers.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from configs.models import DEFAULT_MODEL, DEFAULT_PRECISION, PRECISIONS, model_names
from configs.settings import TrackerSettings, default_cache_dir, load_settings
from worker.engines.registry import AUTO, LITE

if TYPE_CHECKING:
    from jobs.prompts import Prompt


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number of at least 1 (``--max-frames``, counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def device_name(text: str) -> str:
    """An argparse ``type``: ``cpu``, ``cuda`` or ``cuda:N`` (whether this machine has it is
    checked when the model loads, ``worker.engines.registry.check_device``)."""
    if not _DEVICE.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    return text.strip()


def add_max_frames_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--max-frames", type=positive_int, metavar="N", help=f"{help_text} (default: all)"
    )


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=AUTO,
        metavar="NAME",
        help=f"one of {', '.join(model_names() + [LITE])}, or {AUTO} (default: {AUTO} = "
        f"{DEFAULT_MODEL} if --checkpoint is given or its checkpoint is in the cache "
        f"{default_cache_dir()}, else {LITE})",
    )
    group.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="official SAM 2 checkpoint file (.pt) for --model (default: the cached one, "
        "downloaded on first use of a named SAM 2 model)",
    )
    group.add_argument(
        "--image-size",
        type=positive_int,
        metavar="PIXELS",
        help="model input size, smaller is faster: SAM 2's square side (a multiple of 32), "
        "lite's shorter side (default: the model's own)",
    )
    group.add_argument(
        "--device",
        type=device_name,
        metavar="DEVICE",
        help="cpu, cuda or cuda:N (default: cuda if present, else cpu; lite: cpu only)",
    )
    group.add_argument(
        "--offload-memory",
        action="store_true",
        help="keep the memory bank in host RAM instead of GPU memory (default: off)",
    )
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help=f"SAM 2 arithmetic: fp32 = the official predictor's float32 computation; bf16 = "
        f"bfloat16 autocast; auto = bf16 on CUDA and on CPUs with bf16 matrix instructions "
        f"(AMX, AVX-512 BF16), else fp32 (default: {DEFAULT_PRECISION})",
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile SAM 2's components as the official VOS predictor does: slow "
        "first frames, faster after (default: off)",
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
        precision=args.precision or base.precision,
        compile=args.compile or base.compile,
    )


_FRAME_NOTE = "; @FRAME is the 0-based frame it applies to (default: 0); repeatable"


def add_prompt_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "prompts (pixel coordinates of the source frame; OBJ is the object id, 0 or more)"
    )
    flag = {"action": "append", "default": []}
    group.add_argument(
        "--point",
        metavar="OBJ:X,Y[@FRAME]",
        help=f"a click on the object{_FRAME_NOTE}",
        **flag,
    )
    group.add_argument(
        "--neg-point",
        metavar="OBJ:X,Y[@FRAME]",
        help=f"a click on the background, not the object{_FRAME_NOTE}",
        **flag,
    )
    group.add_argument(
        "--box",
        metavar="OBJ:X0,Y0,X1,Y1[@FRAME]",
        help=f"a box around the object, corners top-left and bottom-right{_FRAME_NOTE}",
        **flag,
    )
    group.add_argument(
        "--mask",
        metavar="OBJ:PATH.png[@FRAME]",
        help="a mask image of the object (non-zero pixels), the video's size; only a "
        f"trailing @digits is a frame, so PATH may contain @{_FRAME_NOTE}",
        **flag,
    )
    group.add_argument(
        "--prompts",
        type=Path,
        metavar="FILE",
        help='prompts file: JSON (YAML if .yaml/.yml) {"prompts": [{"object": 1, "frame": 0, '
        '"points": [[X, Y]], "labels": [1]} | "box": [X0, Y0, X1, Y1] | "mask": "m.png"]}; '
        "mask paths are relative to the file",
    )


class ProgressBar:
    """A tqdm bar on stderr fed with ``worker.pipeline.segment.Progress`` reports; a context
    manager.

    The bar appears with the first report (made once the input has passed its checks, so a
    bad input's error stays the only line on stderr) and is erased when the block fails.
    """

    def __init__(self, desc: str, enabled: bool = True) -> None:
        self.desc, self.enabled, self._bar = desc, enabled, None

    def __call__(self, progress) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=progress.total, unit="frame", desc=self.desc, file=sys.stderr)
        self._bar.total = progress.total
        self._bar.update(progress.frame - self._bar.n)
        postfix = {"fps": f"{progress.fps:.1f}"}
        if progress.objects_done is not None:  # a long frame of many objects: it moves
            postfix["objects"] = f"{progress.objects_done}/{progress.objects_total}"
        self._bar.set_postfix(postfix)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if self._bar is not None:
            if exc_type is not None:
                self._bar.leave = False
            self._bar.close()


def prompts_from_args(args: argparse.Namespace) -> list[Prompt]:
    from jobs.prompts import load_prompt_file, merge_prompts, parse_flag

    prompts: list[Prompt] = []
    for kind in ("point", "neg_point", "box", "mask"):
        prompts += [parse_flag(kind.replace("_", "-"), text) for text in getattr(args, kind)]
    if args.prompts is not None:
        prompts += load_prompt_file(args.prompts)
    return merge_prompts(prompts)
