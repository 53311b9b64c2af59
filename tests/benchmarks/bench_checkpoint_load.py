"""Checkpoint loading: memory-mapped (what ``load_model`` does) against a plain ``torch.load``.

    python tests/benchmarks/bench_checkpoint_load.py --repeats 7

Each measurement is a fresh process (the page cache is warm for both: the file was read
before) that builds the sam2.1-tiny model and times ``torch.load`` + ``load_state_dict`` of
the random-weight checkpoint, the two ways interleaved. Reported: medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import sys, time, torch
sys.path.insert(0, {root!r})
from configs.models import get_model_spec
from worker.engines.sam2video.model import build_sam2
model = build_sam2(get_model_spec("sam2.1-tiny"), 512, torch.device("cpu"))
began = time.perf_counter()
state = torch.load({path!r}, map_location="cpu", weights_only=True, mmap={mmap})["model"]
model.load_state_dict(state, strict=True)
print(time.perf_counter() - began)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    opts = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from configs.models import get_model_spec
    from tests.support.random_checkpoint import make_random_checkpoint

    path = Path(tempfile.gettempdir()) / "streamseg-bench" / "random-sam2.1-tiny.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        make_random_checkpoint(get_model_spec("sam2.1-tiny"), path, seed=0)
    path.read_bytes()  # into the page cache for both sides
    seconds: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(opts.repeats):
        for mmap in (True, False):
            code = CHILD.format(root=str(ROOT), path=str(path), mmap=mmap)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            seconds[mmap].append(float(out.stdout.strip().splitlines()[-1]))
    mapped, plain = statistics.median(seconds[True]), statistics.median(seconds[False])
    print(f"checkpoint {path.name}: {path.stat().st_size / 1e6:.0f} MB, {opts.repeats} repeats")
    for name, mmap in (("mmap (shipped)", True), ("plain torch.load", False)):
        runs = ", ".join(f"{s:.3f}" for s in seconds[mmap])
        print(f"{name}: median {statistics.median(seconds[mmap]):.3f} s ({runs})")
    print(f"saved per start: {plain - mapped:.3f} s ({plain / mapped:.1f}x faster load)")


if __name__ == "__main__":
    main()
