"""Where a tracked frame's time goes: wall time per ``sam2`` module, in streamseg's tracker.

    python tests/benchmarks/bench_modules.py --objects 1,8 --size 512 --frames 12

One process (``tune_process()`` first, as the CLI), the e2e benchmark's inputs
(``bench_core.py``: the 1280x720 juggle clip as JPEG, the random-weight sam2.1-tiny
checkpoint, its clicks), frames preloaded. Forward hooks time each module's calls with
``time.perf_counter``; the figures are summed over the frames after ``--warmup`` and divided
by their count. Nested modules overlap their parents (``ma.cross_attn`` is part of
``memory_attention``); ``rest`` is the frame's time outside the timed top-level modules
(prompt encoding, memory assembly, upsampling to 1280x720, Python).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from worker.process_tuning import tune_process  # noqa: E402

TOP_LEVEL = ("image_encoder", "memory_attention", "memory_encoder", "sam_mask_decoder")


def timed(model, totals: dict[str, float]) -> None:
    """Add forward hooks to ``model``'s main modules that add their wall time to ``totals``."""

    def hook(name: str, module) -> None:
        started: list[float] = []
        module.register_forward_pre_hook(lambda *_: started.append(time.perf_counter()))

        def done(*_: object) -> None:
            totals[name] += time.perf_counter() - started.pop()

        module.register_forward_hook(done)

    for name in TOP_LEVEL:
        hook(name, getattr(model, name))
    for layer in model.memory_attention.layers:
        hook("ma.self_attn", layer.self_attn)
        hook("ma.cross_attn", layer.cross_attn_image)


def profile_objects(objects: int, opts: argparse.Namespace, frames: list) -> None:
    from configs.models import get_model_spec
    from jobs.prompts import Prompt
    from tests.benchmarks.bench_core import E2E_CLICKS, MODEL
    from worker.engines.sam2video.model import load_model
    from worker.engines.sam2video.tracker import StreamingTracker

    loaded = load_model(get_model_spec(MODEL), opts.checkpoint, opts.size, "cpu", opts.precision)
    totals: dict[str, float] = defaultdict(float)
    timed(loaded.model, totals)
    tracker = StreamingTracker(loaded, num_frames=len(frames))
    for obj in range(objects):
        tracker.add_prompt(Prompt(obj + 1, 0, points=(E2E_CLICKS[obj],), labels=(1,)))
    wall = 0.0
    for index, rgb in enumerate(frames):
        if index == opts.warmup:
            totals.clear()
        start = time.perf_counter()
        tracker.step(rgb)
        wall += time.perf_counter() - start if index >= opts.warmup else 0.0
    counted = len(frames) - opts.warmup
    rest = wall - sum(totals[name] for name in TOP_LEVEL)
    print(f"| {objects} | {1000 * wall / counted:.0f} | " + " | ".join(
        f"{1000 * totals[name] / counted:.0f}"
        for name in (*TOP_LEVEL, "ma.cross_attn", "ma.self_attn")
    ) + f" | {1000 * rest / counted:.0f} |")  # fmt: skip


def main() -> None:
    tune_process()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", default="1,8")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/streamseg-bench"))
    opts = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from configs.models import get_model_spec
    from tests.benchmarks.bench_core import MODEL, make_clip_folder
    from tests.support.random_checkpoint import make_random_checkpoint

    torch.set_num_threads(opts.threads)
    opts.workdir.mkdir(parents=True, exist_ok=True)
    opts.checkpoint = opts.workdir / "random-sam2.1-tiny.pt"
    if not opts.checkpoint.exists():
        make_random_checkpoint(get_model_spec(MODEL), opts.checkpoint, seed=0)
    folder = make_clip_folder(opts.frames, opts.workdir)
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.jpg"))]
    print(f"size={opts.size} precision={opts.precision} frames={len(frames)} "
          f"(ms per frame over frames {opts.warmup}..{len(frames) - 1})")  # fmt: skip
    print("| objects | frame | " + " | ".join((*TOP_LEVEL, "ma.cross_attn", "ma.self_attn"))
          + " | rest |")  # fmt: skip
    print("|---" * (len(TOP_LEVEL) + 5) + "|")
    with torch.inference_mode():
        for objects in (int(n) for n in opts.objects.split(",")):
            profile_objects(objects, opts, frames)


if __name__ == "__main__":
    main()
