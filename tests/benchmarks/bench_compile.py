"""``--compile`` on this machine: compile time and steady-state gain of a tracker step.

    python tests/benchmarks/bench_compile.py --size 512 --frames 8 --objects 1 [--precision bf16]

One process builds two trackers (``--precision``: auto, the default, fp32 or bf16) on the
same random-weight sam2.1-tiny checkpoint, one eager and one compiled
(``worker.engines.sam2video.compile.compile_sam2``, the components the official
``SAM2VideoPredictorVOS`` compiles), and feeds both the same frames of the juggle clip,
interleaved frame by frame. Reported: the compiled side's first two frames (compilation of
the prompted-frame and tracked-frame graphs lands there), the median seconds per frame of
both sides over the frames after those, their ratio, and the largest mask-logit difference
between them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CLIP = ROOT.parent / "shared" / "data" / "videos" / "05_default_juggle.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args()

    import torch

    from configs.models import get_model_spec
    from jobs.prompts import Prompt
    from tests.support.random_checkpoint import make_random_checkpoint
    from worker.engines.sam2video.compile import use_compile_cache
    from worker.engines.sam2video.model import load_model
    from worker.engines.sam2video.tracker import StreamingTracker
    from worker.video.source import open_video

    torch.set_num_threads(args.threads)
    work = Path(tempfile.gettempdir()) / "streamseg-bench"
    print(f"inductor cache: {use_compile_cache(work)}")
    checkpoint = work / "random-sam2.1-tiny.pt"
    spec = get_model_spec("sam2.1-tiny")
    if not checkpoint.exists():
        make_random_checkpoint(spec, checkpoint, seed=0)
    sides = {}
    for name, compiled in (("eager", False), ("compiled", True)):
        loaded = load_model(
            spec, checkpoint, args.size, "cpu", args.precision, compile_model=compiled
        )
        tracker = StreamingTracker(loaded, num_frames=args.frames)
        for obj in range(args.objects):
            point = (160.0 + 120 * obj, 360.0)
            tracker.add_prompt(Prompt(obj + 1, 0, points=(point,), labels=(1,)))
        sides[name] = (tracker, [])
    worst = 0.0
    with open_video(CLIP) as video:
        for frame in video:
            if frame.index >= args.frames:
                break
            outputs = {}
            for name, (tracker, seconds) in sides.items():
                began = time.perf_counter()
                outputs[name] = tracker.step(frame.rgb)
                seconds.append(time.perf_counter() - began)
            for obj_id, obj in outputs["eager"].objects.items():
                other = outputs["compiled"].objects[obj_id].low_res_logits
                worst = max(worst, (obj.low_res_logits - other).abs().max().item())
    eager, compiled = sides["eager"][1], sides["compiled"][1]
    steady_eager, steady_compiled = statistics.median(eager[2:]), statistics.median(compiled[2:])
    print(
        f"size={args.size} objects={args.objects} frames={args.frames} threads={args.threads} "
        f"precision={args.precision} (autocast {loaded.autocast_dtype})"
    )
    print(f"compiled first two frames (compilation): {compiled[0]:.1f} s, {compiled[1]:.1f} s")
    print(f"eager first two frames: {eager[0]:.1f} s, {eager[1]:.1f} s")
    print(
        f"steady s/frame: eager {steady_eager:.2f}, compiled {steady_compiled:.2f}, "
        f"gain {steady_eager / steady_compiled:.2f}x; max |logit diff| {worst:.2e}"
    )


if __name__ == "__main__":
    main()
