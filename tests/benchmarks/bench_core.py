"""Core tracker benchmarks: streamseg vs the official SAM2VideoPredictor, side by side.

    python tests/benchmarks/bench_core.py memory   # peak RSS, 60 vs 600 frames
    python tests/benchmarks/bench_core.py memory --impls pipeline,official
    python tests/benchmarks/bench_core.py speed    # fps and peak RSS, 1 and 4 objects
    python tests/benchmarks/bench_core.py e2e      # whole-process wall time, CLI vs official

``e2e``: each run is a fresh process timed from start to exit (imports and model loading
included): ``streamseg segment`` (tracks.json and overlay.mp4 written) against a script that
runs the official predictor's defaults (``init_state`` + ``propagate_in_video``, masks to
numpy), on the same JPEG folder: the first ``--frames`` frames of a 1280x720 clip decoded
once, outside the timing. Cases are interleaved, ``--repeats`` times; medians and ratios.
Masks are compared with the official float32 run's (IoU per object and frame).

``memory``: ``streamseg`` is the tracker alone, ``pipeline`` the whole ``segment_video`` run
(decoding ahead in a thread, tracks.json and overlay.mp4 written behind it), ``official`` the
official predictor; streamseg's sides at its default precision (auto), the official one in
float32.

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
    from worker.video.source import open_video

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
    from worker.engines.sam2video.model import load_model
    from worker.engines.sam2video.tracker import StreamingTracker
    from worker.video.source import open_video

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


def run_pipeline(folder: Path, objects: int, checkpoint: Path, size: int, device: str) -> tuple:
    """``run_ours`` through ``segment_video`` (stages, tracks.json and overlay.mp4 written)."""
    from configs.models import get_model_spec
    from jobs.media import ModelInfo
    from jobs.prompts import Prompt
    from worker.engines.sam2video.model import load_model
    from worker.engines.sam2video.tracker import StreamingTracker
    from worker.pipeline.segment import SegmentRequest, segment_video

    loaded = load_model(get_model_spec(MODEL), checkpoint, size, device)
    prompts = [Prompt(o + 1, 0, points=(CLICKS[o],), labels=(1,)) for o in range(objects)]
    with tempfile.TemporaryDirectory() as out:
        request = SegmentRequest(str(folder), Path(out), prompts)
        start = time.perf_counter()
        summary = segment_video(
            request,
            lambda info: StreamingTracker(loaded, num_frames=info.num_frames),
            ModelInfo(name=MODEL),
        )
        return summary.num_frames, time.perf_counter() - start


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


E2E_CLIP = "05_default_juggle.mp4"
E2E_CLICKS = [
    (640, 360), (320, 200), (960, 200), (320, 520), (960, 520), (160, 360), (1120, 360), (640, 120),
]  # fmt: skip


def make_clip_folder(frames: int, workdir: Path) -> Path:
    """The first ``frames`` frames of the 1280x720 juggle clip as JPEG (quality 95)."""
    from worker.video.source import open_video

    folder = workdir / f"juggle{frames}"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    with open_video(SHARED / "videos" / E2E_CLIP) as video:
        for frame in video:
            if frame.index >= frames:
                break
            Image.fromarray(frame.rgb).save(folder / f"{frame.index:05d}.jpg", quality=95)
    return folder


def official_e2e(args: argparse.Namespace) -> None:
    """The official predictor's defaults (float32 on CPU; ``--precision bf16``: under bf16
    autocast), masks saved to ``--masks`` as {"f{t}": (objects, H, W) bool}."""
    import numpy as np
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    from configs.models import get_model_spec

    predictor = build_sam2_video_predictor(
        get_model_spec(MODEL).config, str(args.checkpoint), device=args.device,
        hydra_overrides_extra=[f"++model.image_size={args.size}"],
    )  # fmt: skip
    autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    masks = {}
    with torch.inference_mode(), autocast:
        state = predictor.init_state(args.folder)
        for obj in range(args.objects):
            point = [E2E_CLICKS[obj]]
            predictor.add_new_points_or_box(state, 0, obj + 1, points=point, labels=[1])
        for t, _, logits in predictor.propagate_in_video(state):
            masks[f"f{t}"] = (logits[:, 0] > 0).cpu().numpy()
    np.savez_compressed(args.masks, **masks)


def e2e_prompts(workdir: Path, objects: int) -> Path:
    path = workdir / f"prompts{objects}.json"
    entries = [
        {"frame": 0, "object": i + 1, "points": [list(E2E_CLICKS[i])], "labels": [1]}
        for i in range(objects)
    ]
    path.write_text(json.dumps({"prompts": entries}))
    return path


def e2e_command(impl: str, precision: str, folder: Path, objects: int, out: Path, opts) -> list:
    if impl == "official":
        return [
            sys.executable, __file__, "_official", "--folder", str(folder),
            "--objects", str(objects), "--checkpoint", str(opts.checkpoint),
            "--size", str(opts.size), "--device", opts.device, "--precision", precision,
            "--masks", str(out / "masks.npz"),
        ]  # fmt: skip
    return [
        sys.executable, "-m", "worker.cli", "segment", str(folder), "--out", str(out),
        "--model", MODEL, "--checkpoint", str(opts.checkpoint), "--image-size", str(opts.size),
        "--device", opts.device, "--quiet", "--prompts", str(e2e_prompts(opts.workdir, objects)),
    ] + ([] if precision == "default" else ["--precision", precision])  # fmt: skip


def e2e_masks(impl: str, out: Path, frames: int) -> dict:
    """{(frame, object): (H, W) bool} from either side's output."""
    import numpy as np

    if impl == "official":
        saved = np.load(out / "masks.npz")
        return {(t, o + 1): m for t in range(frames) for o, m in enumerate(saved[f"f{t}"])}
    from jobs.tracks import read_tracks

    tracks = read_tracks(out / "tracks.json")
    return {(t, o): m for t in range(frames) for o, m in tracks.masks_at(t).items()}


def compare_masks(masks: dict, reference: dict) -> tuple[float, float, bool]:
    """(mean IoU, min IoU, every mask identical) against ``reference``."""
    ious = []
    for key, ref in reference.items():
        union = (masks[key] | ref).sum()
        ious.append((masks[key] & ref).sum() / union if union else 1.0)
    identical = all((masks[key] == ref).all() for key, ref in reference.items())
    return float(statistics.mean(ious)), float(min(ious)), identical


def e2e(opts: argparse.Namespace) -> None:
    import os

    import torch

    from worker.engines.precision import autocast_dtype

    folder = make_clip_folder(opts.frames, opts.workdir)
    default = autocast_dtype("auto", torch.device(opts.device))
    auto = "bf16" if default else "fp32"
    print(f"{opts.frames} frames of {E2E_CLIP} (1280x720) as JPEG; streamseg's default "
          f"precision here (auto): {auto}; load average {os.getloadavg()}")  # fmt: skip
    cases = [("streamseg", "default"), ("official", "fp32")]
    if "bf16" in opts.precisions:  # streamseg's default is its bf16 case where auto is bf16
        cases += [("streamseg", "bf16")] if auto != "bf16" else []
        cases += [("official", "bf16")]
    if "fp32" in opts.precisions:
        cases.insert(1, ("streamseg", "fp32"))
    print("| objects | case | median wall s | runs (s) | x official fp32 | mask IoU mean / min vs "
          "official fp32 | identical |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for objects in opts.counts:
        walls: dict[tuple, list[float]] = {case: [] for case in cases}
        for repeat in range(opts.repeats):
            for impl, precision in cases:
                out = opts.workdir / f"e2e-{impl}-{precision}-{objects}-{repeat}"
                out.mkdir(parents=True, exist_ok=True)
                cmd = e2e_command(impl, precision, folder, objects, out, opts)
                began = time.perf_counter()
                subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
                walls[(impl, precision)].append(time.perf_counter() - began)
        last = opts.repeats - 1
        out_of = {c: opts.workdir / f"e2e-{c[0]}-{c[1]}-{objects}-{last}" for c in cases}
        reference = e2e_masks("official", out_of[("official", "fp32")], opts.frames)
        base = statistics.median(walls[("official", "fp32")])
        for case in cases:
            mean, low, same = compare_masks(
                e2e_masks(case[0], out_of[case], opts.frames), reference
            )
            median = statistics.median(walls[case])
            runs = ", ".join(f"{w:.1f}" for w in walls[case])
            row = f"| {objects} | {case[0]} {case[1]} | {median:.1f} | {runs} | "
            print(row + f"{base / median:.2f}x | {mean:.4f} / {low:.4f} | {same} |", flush=True)
    print(f"load average after: {os.getloadavg()}")


def child(args: argparse.Namespace) -> None:
    if args.impl != "official":  # streamseg's processes start as its CLI does
        from worker.process_tuning import tune_process

        tune_process()
    import torch

    torch.set_num_threads(args.threads)
    runner = {"streamseg": run_ours, "pipeline": run_pipeline, "official": run_official}[args.impl]
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
    for impl in opts.impls:
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
    parser.add_argument("mode", choices=["memory", "speed", "e2e", "_child", "_official"])
    parser.add_argument("--impl", choices=["streamseg", "pipeline", "official"])
    parser.add_argument(
        "--impls", type=lambda t: t.split(","), default=["streamseg", "official"],
        help="memory: streamseg (tracker), pipeline (segment_video), official",
    )  # fmt: skip
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
    parser.add_argument("--precision", default="fp32", help="_official: fp32 or bf16")
    parser.add_argument("--masks", type=Path, help="_official: where its masks go")
    parser.add_argument(
        "--precisions", type=lambda t: t.split(","), default=["default"],
        help="e2e: extra streamseg/official cases: fp32 (streamseg forced), bf16 (both)",
    )  # fmt: skip
    opts = parser.parse_args()
    if opts.mode == "_child":
        return child(opts)
    if opts.mode == "_official":
        return official_e2e(opts)
    opts.workdir.mkdir(parents=True, exist_ok=True)
    if opts.checkpoint is None:
        from configs.models import get_model_spec
        from tests.support.random_checkpoint import make_random_checkpoint

        opts.checkpoint = opts.workdir / "random-sam2.1-tiny.pt"
        if not opts.checkpoint.exists():
            make_random_checkpoint(get_model_spec(MODEL), opts.checkpoint, seed=0)
    print(
        f"device={opts.device} image_size={opts.size} model={MODEL} "
        f"checkpoint={opts.checkpoint.name}"
    )
    {"memory": memory, "speed": speed, "e2e": e2e}[opts.mode](opts)


if __name__ == "__main__":
    main()
