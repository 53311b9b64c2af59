"""Image encoder (``forward_image``) seconds under float32 and under bf16 autocast, this CPU.

    python tests/benchmarks/bench_precision.py --size 512 --repeats 3

A random-weight sam2.1-tiny at ``--size``, one random frame; fp32 and bf16 calls interleaved
(one warm-up call each first), medians. Prints what ``--precision auto`` picks here and
whether the CPU has bf16 matrix instructions (AMX tiles, AVX-512 BF16).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from configs.models import get_model_spec
    from worker.engines.precision import autocast_dtype, cpu_has_bf16_matmul
    from worker.engines.sam2video.model import build_sam2

    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    print(
        f"cpu capability {torch.backends.cpu.get_cpu_capability()}, bf16 matmul "
        f"{cpu_has_bf16_matmul()}, auto -> {autocast_dtype('auto', cpu)}, load {os.getloadavg()}"
    )
    model = build_sam2(get_model_spec("sam2.1-tiny"), args.size, cpu).eval()
    image = torch.randn(1, 3, args.size, args.size)
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    with torch.inference_mode():
        for repeat in range(args.repeats + 1):
            for name in seconds:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
                    began = time.perf_counter()
                    model.forward_image(image)
                    if repeat > 0:  # the first call of each is a warm-up
                        seconds[name].append(time.perf_counter() - began)
    fp32, bf16 = (statistics.median(seconds[n]) for n in ("fp32", "bf16"))
    runs = {n: ", ".join(f"{s:.2f}" for s in v) for n, v in seconds.items()}
    print(f"size {args.size}: fp32 {fp32:.2f} s ({runs['fp32']}), bf16 {bf16:.2f} s "
          f"({runs['bf16']}); bf16 speed {fp32 / bf16:.2f}x fp32")  # fmt: skip


if __name__ == "__main__":
    main()
