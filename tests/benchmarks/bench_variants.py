"""One tracked frame, side by side: streamseg's bf16 model against itself without one of its
rewrites, and float32, interleaved frame by frame in one process.

    python tests/benchmarks/bench_variants.py --objects 1,8 --size 512 --frames 12
    python tests/benchmarks/bench_variants.py --layer --frames 12   # one layer's cross-attention

Variants (each a ``load_model`` of the random-weight sam2.1-tiny checkpoint, ``tune_process()``
first as the CLI):

- ``bf16``: what ``--precision bf16`` ships (on this CPU also ``auto``'s choice where it has
  bf16 matrix instructions);
- ``bf16-values-before``: the same, with the memory cross-attention's value projection left
  before the attention (``worker.engines.sam2video.value_projection`` not applied);
- ``fp32``: float32, the official computation.

Every variant gets the same frames of the 1280x720 juggle clip (preloaded) and the e2e
benchmark's clicks. Reported per object count: the median seconds per frame over the frames
after ``--warmup``, the ratio to ``bf16-values-before``, and the masks' IoU against
``fp32`` (mean over objects and frames).
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

from worker.process_tuning import tune_process  # noqa: E402

VARIANTS = ("bf16", "bf16-values-before", "fp32")


def load_variant(name: str, checkpoint: Path, size: int):
    from unittest import mock

    from configs.models import get_model_spec
    from worker.engines.sam2video import model as model_module

    spec = get_model_spec("sam2.1-tiny")
    precision = "fp32" if name == "fp32" else "bf16"
    if name != "bf16-values-before":
        return model_module.load_model(spec, checkpoint, size, "cpu", precision)
    with mock.patch.object(model_module, "project_values_after_attending", lambda model: 0):
        return model_module.load_model(spec, checkpoint, size, "cpu", precision)


def run(objects: int, frames: list, checkpoint: Path, opts) -> None:
    from jobs.prompts import Prompt
    from tests.benchmarks.bench_core import E2E_CLICKS
    from worker.engines.sam2video.tracker import StreamingTracker

    trackers = {}
    for name in VARIANTS:
        tracker = StreamingTracker(load_variant(name, checkpoint, opts.size))
        for obj in range(objects):
            tracker.add_prompt(Prompt(obj + 1, 0, points=(E2E_CLICKS[obj],), labels=(1,)))
        trackers[name] = tracker
    seconds = {name: [] for name in VARIANTS}
    ious = {name: [] for name in VARIANTS}
    for index, rgb in enumerate(frames):
        results = {}
        for name, tracker in trackers.items():
            began = time.perf_counter()
            results[name] = tracker.step(rgb)
            if index >= opts.warmup:
                seconds[name].append(time.perf_counter() - began)
        for name in VARIANTS:
            for obj_id, ref in results["fp32"].objects.items():
                mask = results[name].objects[obj_id].mask
                union = (mask | ref.mask).sum()
                ious[name].append((mask & ref.mask).sum() / union if union else 1.0)
    base = statistics.median(seconds["bf16-values-before"])
    for name in VARIANTS:
        median = statistics.median(seconds[name])
        print(
            f"| {objects} | {name} | {median * 1000:.0f} | {base / median:.2f}x | "
            f"{statistics.mean(ious[name]):.4f} |",
            flush=True,
        )


def layer(checkpoint: Path, opts) -> None:
    """One memory-attention layer's cross-attention, shipped against values-before, on the
    shapes of an 8-object frame at 512 px (1,024 queries, 7 x 1,024 + 4 x 16 memory tokens),
    interleaved call by call."""
    import copy

    import torch

    loaded = load_variant("bf16", checkpoint, opts.size)
    shipped = loaded.model.memory_attention.layers[0].cross_attn_image
    before = copy.deepcopy(shipped)
    before.v_proj, before.out_proj = before.out_proj[0], before.out_proj[1]
    batch, queries, keys = opts.layer_objects, (opts.size // 16) ** 2, 7 * (opts.size // 16) ** 2
    q = torch.randn(batch, queries, 256)
    k = torch.randn(keys + 64, batch, 64).transpose(0, 1)  # sam2 passes them transposed
    v = torch.randn(keys + 64, batch, 64).transpose(0, 1)
    seconds = {"bf16": [], "bf16-values-before": []}
    with torch.inference_mode(), loaded.autocast():
        for _ in range(opts.frames):
            for name, module in (("bf16", shipped), ("bf16-values-before", before)):
                began = time.perf_counter()
                module(q, k, v, num_k_exclude_rope=64)
                seconds[name].append(time.perf_counter() - began)
    medians = {name: statistics.median(values[1:]) * 1000 for name, values in seconds.items()}
    print(f"one cross-attention layer, {batch} objects, {queries} queries x {keys + 64} keys:")
    print(f"bf16 {medians['bf16']:.1f} ms, bf16-values-before {medians['bf16-values-before']:.1f}"
          f" ms, {medians['bf16-values-before'] / medians['bf16']:.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=lambda t: [int(x) for x in t.split(",")], default=[1])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--layer", action="store_true", help="one cross-attention layer only")
    parser.add_argument("--layer-objects", type=int, default=8)
    opts = parser.parse_args()
    tune_process()
    from configs.models import get_model_spec
    from tests.benchmarks.bench_core import MODEL, make_clip_folder
    from tests.support.random_checkpoint import make_random_checkpoint
    from worker.video.source import open_video

    work = Path(tempfile.gettempdir()) / "streamseg-bench"
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = work / "random-sam2.1-tiny.pt"
    if not checkpoint.exists():
        make_random_checkpoint(get_model_spec(MODEL), checkpoint, seed=0)
    if opts.layer:
        return layer(checkpoint, opts)
    with open_video(make_clip_folder(opts.frames, work)) as video:
        frames = [frame.rgb for frame in video]
    print(f"size={opts.size} frames={opts.frames} warmup={opts.warmup}")
    print("| objects | variant | ms per frame (median) | x bf16-values-before | mask IoU vs fp32 |")
    print("|---|---|---|---|---|")
    for objects in opts.objects:
        run(objects, frames, checkpoint, opts)


if __name__ == "__main__":
    main()
