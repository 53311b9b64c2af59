"""Cost of many objects on one frame: seconds and peak RSS against the number of objects.

    python tests/benchmarks/bench_objects.py --counts 16,64,256 --size 128

Each run is a fresh process: a random-weight sam2.1-tiny ``StreamingTracker`` at ``--size``,
N box prompts (all of one form, so they batch) on frame 0 of a 320x180 synthetic clip, then
one tracked frame. Reported: seconds of the prompted frame and of the tracked frame, their
milliseconds per object (flat = linear cost) and the process's peak RSS, for object batches
of ``configs.models.OBJECT_BATCH`` and, for comparison, one unbounded batch (all objects in
one pass: what the tracker did before batches were bounded).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def child(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from configs.models import get_model_spec
    from jobs.prompts import Prompt
    from worker.engines.sam2video.model import load_model
    from worker.engines.sam2video.tracker import StreamingTracker

    torch.set_num_threads(args.threads)
    loaded = load_model(get_model_spec("sam2.1-tiny"), args.checkpoint, args.size, "cpu", "fp32")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (180, 320, 3), dtype=np.uint8) for _ in range(2)]
    tracker = StreamingTracker(loaded, num_frames=2, object_batch=args.object_batch)
    for obj in range(1, args.objects + 1):
        x, y = float(obj % 280), float(obj % 140)
        tracker.add_prompt(Prompt(obj, 0, box=(x, y, x + 40.0, y + 40.0)))
    seconds = []
    for rgb in frames:
        began = time.perf_counter()
        tracker.step(rgb)
        seconds.append(time.perf_counter() - began)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    from configs.models import OBJECT_BATCH

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--counts", type=lambda t: [int(x) for x in t.split(",")], default=[16, 64, 256]
    )
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--objects", type=int)
    parser.add_argument("--object-batch", type=int, default=OBJECT_BATCH)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.checkpoint is None:
        from configs.models import get_model_spec
        from tests.support.random_checkpoint import make_random_checkpoint

        args.checkpoint = Path(tempfile.gettempdir()) / "streamseg-bench" / "random-sam2.1-tiny.pt"
        if not args.checkpoint.exists():
            make_random_checkpoint(get_model_spec("sam2.1-tiny"), args.checkpoint, seed=0)
    print(f"image_size={args.size} threads={args.threads} clip=320x180, N box prompts on frame 0")
    print(
        "| objects | object batch | prompted frame s | ms/object | tracked frame s | ms/object "
        "| peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for objects in args.counts:
        for batch in (OBJECT_BATCH, 1 << 30):
            cmd = [
                sys.executable, __file__, "--child", "--objects", str(objects),
                "--object-batch", str(batch), "--checkpoint", str(args.checkpoint),
                "--size", str(args.size), "--threads", str(args.threads),
            ]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
            run = json.loads(out.stdout.strip().splitlines()[-1])
            first, second = run["seconds"]
            label = str(batch) if batch < objects else f"all ({objects})"
            print(
                f"| {objects} | {label} | {first:.2f} | {1000 * first / objects:.0f} | "
                f"{second:.2f} | {1000 * second / objects:.0f} | {run['peak_mb']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
