"""Core tracker benchmarks: streamseg vs the official SAM2VideoPredictor, side by side.

    python tests/benchmarks/bench_core.py memory   # peak RSS, 60 vs 600 frames
    python tests/benchmarks/bench_core.py speed    # fps and peak RSS, 1 and 4 objects

Each measurement runs in its own process (peak RSS = that process's ru_maxrss). Both sides
read the same JPEG folder (made once under /tmp from ../shared clips), the same checkpoint
(a random-weight sam2.1-tiny unless --checkpoint is given) and the same device.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
MODEL = "sam2.1-tiny"
CLICKS = [(300, 200), (600, 300), (150, 400), (750, 120)]


def make_folder(frames: int, workdir: Path) -> Path:
    """``frames`` JPEGs from bedroom.mp4 (looped: 200 frames), decoded once with PyAV."""
    from worker.video_source import open_video

    folder = workdir / f"frames{frames}"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    index = 0
    while index < frames:
        with open_video(SHARED / "videos" / "bedroom.mp4") as video:
            for frame in video:
                if index >= frames:
                    break
                Image.fromarray(frame.rgb).save(folder / f"{index:05d}.jpg", quality=95)
                index += 1
    return folder


def run_ours(folder: Path, objects: int, checkpoint: Path, size: int, device: str) -> tuple:
    """Frames tracked and seconds spent (decode + track + masks; model loading excluded)."""
    from configs.models import get_model_spec
    from jobs.prompts import Prompt
    from worker.sam2_model import load_model
    from worker.tracker import StreamingTracker
    from worker.video_source import open_video

    loaded = load_model(get_model_spec(MODEL), checkpoint, size, device)
    start = time.perf_counter()
    count = 0
    with open_video(folder) as video:
        tracker = StreamingTracker(loaded, num_frames=video.info.num_frames)
        for obj in range(objects):
            tracker.add_prompt(Prompt(obj + 1, 0, points=(CLICKS[obj],), labels=(1,)))
        for frame in video:
            result = tracker.step(frame.rgb)
            _ = [r.mask for r in result.objects.values()]
            count += 1
    return count, time.perf_counter() - start


def run_official(folder: Path, objects: int, checkpoint: Path, size: int, device: str) -> tuple:
    """Same as ``run_ours`` for ``init_state`` (loads every frame) + ``propagate_in_video``."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    from configs.models import get_model_spec

    predictor = build_sam2_video_predictor(
        get_model_spec(MODEL).config, str(checkpoint), device=device,
        hydra_overrides_extra=[f"++model.image_size={size}"],
    )  # fmt: skip
    start = time.perf_counter()
    with torch.inference_mode():
        state = predictor.init_state(str(folder))
        for obj in range(objects):
            predictor.add_new_points_or_box(state, 0, obj + 1, points=[CLICKS[obj]], labels=[1])
        count = 0
        for _, _, masks in predictor.propagate_in_video(state):
            _ = (masks > 0).cpu().numpy()
            count += 1
    return count, time.perf_counter() - start


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    runner = run_ours if args.impl == "streamseg" else run_official
    frames, seconds = runner(
        Path(args.folder), args.objects, Path(args.checkpoint), args.size, args.device
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": frames, "seconds": seconds, "peak_mb": peak_mb}))


def measure(impl: str, folder: Path, objects: int, opts: argparse.Namespace) -> dict:
    cmd = [
        sys.executable, __file__, "_child", "--impl", impl, "--folder", str(folder),
        "--objects", str(objects), "--checkpoint", str(opts.checkpoint),
        "--size", str(opts.size), "--device", opts.device, "--threads", str(opts.threads),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(opts: argparse.Namespace) -> None:
    print(
        f"| implementation | peak RSS 60 frames (MB) | peak RSS {opts.long} frames (MB) | ratio |"
    )
    print("|---|---|---|---|")
    short, long = make_folder(60, opts.workdir), make_folder(opts.long, opts.workdir)
    for impl in ("streamseg", "official"):
        a, b = measure(impl, short, 1, opts), measure(impl, long, 1, opts)
        ratio = b["peak_mb"] / a["peak_mb"]
        print(f"| {impl} | {a['peak_mb']:.0f} | {b['peak_mb']:.0f} | {ratio:.2f}x |", flush=True)


def speed(opts: argparse.Namespace) -> None:
    folder = make_folder(opts.frames, opts.workdir)
    print(
        "| objects | streamseg fps | official fps | fps ratio "
        "| streamseg peak MB | official peak MB |"
    )
    print("|---|---|---|---|---|---|")
    for objects in opts.counts:
        runs = {impl: [] for impl in ("streamseg", "official")}
        for _ in range(opts.repeats):  # interleaved, so both see the same machine noise
            for impl in runs:
                runs[impl].append(measure(impl, folder, objects, opts))
        fps = {i: statistics.median(r["frames"] / r["seconds"] for r in runs[i]) for i in runs}
        peak = {i: statistics.median(r["peak_mb"] for r in runs[i]) for i in runs}
        print(
            f"| {objects} | {fps['streamseg']:.2f} | {fps['official']:.2f} | "
            f"{fps['streamseg'] / fps['official']:.2f}x | {peak['streamseg']:.0f} | "
            f"{peak['official']:.0f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["memory", "speed", "_child"])
    parser.add_argument("--impl", choices=["streamseg", "official"])
    parser.add_argument("--folder")
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=40, help="speed: frames per run")
    parser.add_argument("--long", type=int, default=600, help="memory: long run length")
    parser.add_argument("--repeats", type=int, default=3, help="speed: runs per cell")
    parser.add_argument(
        "--counts", type=lambda t: [int(x) for x in t.split(",")], default=[1, 4],
        help="speed: object counts, comma-separated",
    )  # fmt: skip
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "streamseg-bench"
    )
    opts = parser.parse_args()
    if opts.mode == "_child":
        return child(opts)
    opts.workdir.mkdir(parents=True, exist_ok=True)
    if opts.checkpoint is None:
        from configs.models import get_model_spec
        from worker.random_checkpoint import make_random_checkpoint

        opts.checkpoint = opts.workdir / "random-sam2.1-tiny.pt"
        if not opts.checkpoint.exists():
            make_random_checkpoint(get_model_spec(MODEL), opts.checkpoint, seed=0)
    print(
        f"device={opts.device} image_size={opts.size} model={MODEL} "
        f"checkpoint={opts.checkpoint.name}"
    )
    (memory if opts.mode == "memory" else speed)(opts)


if __name__ == "__main__":
    main()
