"""DAVIS 2016 end to end: ``streamseg annotate`` from first-frame masks, then ``streamseg eval``.

    python tests/benchmarks/run_davis_annotate.py --checkpoint sam2.1_hiera_tiny.pt
    python tests/benchmarks/run_davis_annotate.py --random-checkpoint --image-size 256 \\
        --max-frames 5          # plumbing check only: a random-weight model scores nothing

All ten sequences of ``../shared/data/davis2016-train`` (or ``--davis``) are annotated in one
``streamseg annotate JPEGImages --masks Annotations`` run (the semi-supervised protocol: the
first frame's mask is the prompt), then scored with ``streamseg eval``, which prints J, F and
J&F per sequence and their means. With ``--max-frames N`` only the first N frames are annotated
and scored (the ground truth is cut to match). Both commands run as child processes, exactly
as a user would type them; the commands are printed first. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DAVIS = (
    Path(os.environ.get("STREAMSEG_SHARED", ROOT.parent / "shared")) / "data" / "davis2016-train"
)
RANDOM_MODEL = "sam2.1-tiny"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", type=Path, default=DEFAULT_DAVIS, help="DAVIS root")
    parser.add_argument("--out", type=Path, help="output folder (default: a new temp folder)")
    parser.add_argument("--model", help="streamseg --model (default: what streamseg picks)")
    parser.add_argument("--checkpoint", type=Path, help="SAM 2 checkpoint file")
    parser.add_argument("--random-checkpoint", action="store_true", help="random sam2.1-tiny")
    parser.add_argument("--image-size", type=int, help="model input size")
    parser.add_argument("--device", help="cuda, cpu (default: streamseg's choice)")
    parser.add_argument("--max-frames", type=int, help="annotate and score N frames per video")
    parser.add_argument("--export", default="tracks,davis", help="annotate --export value")
    return parser.parse_args(argv)


def model_flags(args: argparse.Namespace, out: Path) -> list[str]:
    flags: list[str] = []
    checkpoint = args.checkpoint
    if args.random_checkpoint:
        checkpoint = random_checkpoint(out / "random-sam2.1-tiny.pt")
        flags += ["--model", args.model or RANDOM_MODEL]
    elif args.model:
        flags += ["--model", args.model]
    if checkpoint is not None:
        flags += ["--checkpoint", str(checkpoint)]
    if args.image_size is not None:
        flags += ["--image-size", str(args.image_size)]
    if args.device is not None:
        flags += ["--device", args.device]
    return flags


def random_checkpoint(path: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from configs.models import get_model_spec
    from tests.support.random_checkpoint import make_random_checkpoint

    if not path.is_file():
        make_random_checkpoint(get_model_spec(RANDOM_MODEL), path, seed=0)
    return path


def cut_ground_truth(annotations: Path, out: Path, frames: int) -> Path:
    """``out/<seq>/`` with links to the first ``frames`` ground-truth PNGs of each sequence."""
    for sequence in sorted(p for p in annotations.iterdir() if p.is_dir()):
        folder = out / sequence.name
        folder.mkdir(parents=True, exist_ok=True)
        for png in sorted(sequence.glob("*.png"))[:frames]:
            link = folder / png.name
            if not link.exists():
                link.symlink_to(png.resolve())
    return out


def run(command: list[str]) -> int:
    print("$ " + shlex.join(["streamseg", *command[3:]]), flush=True)
    start = time.perf_counter()
    code = subprocess.call(command, cwd=ROOT)
    print(f"[exit {code} after {time.perf_counter() - start:.1f} s]", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="davis-annotate-"))
    out.mkdir(parents=True, exist_ok=True)
    images, annotations = args.davis / "JPEGImages", args.davis / "Annotations"
    if not images.is_dir() or not annotations.is_dir():
        print(f"no DAVIS data at {args.davis} (set STREAMSEG_SHARED or --davis)", file=sys.stderr)
        return 2
    cli = [sys.executable, "-m", "worker.cli"]
    annotate = [*cli, "annotate", str(images), "--masks", str(annotations)]
    annotate += ["--out", str(out / "pred"), "--export", args.export, *model_flags(args, out)]
    gt = annotations
    if args.max_frames is not None:
        annotate += ["--max-frames", str(args.max_frames)]
        gt = cut_ground_truth(annotations, out / f"gt-first-{args.max_frames}", args.max_frames)
    code = run(annotate)
    if code != 0:
        return code
    return run([*cli, "eval", str(out / "pred"), str(gt), "--json", str(out / "eval.json")])


if __name__ == "__main__":
    sys.exit(main())
