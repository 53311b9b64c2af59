"""GPU benchmark in one command: streamseg against SAM2VideoPredictor and SAM2VideoPredictorVOS.

    python tests/benchmarks/bench_gpu.py --out /tmp/gpu-bench            # CUDA, full run
    python tests/benchmarks/bench_gpu.py --device cpu --quick --out DIR  # CPU dry run (tests)

It makes its own H.264 clip (1080p, moving discs; ``--quick``: 160x96, 3 frames) and random
checkpoints (``tests/support/random_checkpoint.py``), then for each model (sam2.1-tiny, -large;
``--quick``: tiny) and object count (1, 8; ``--quick``: 1) measures, in this order, so that
every case sees the same machine:

- ``streamseg track``: decode + preprocess + ``StreamingTracker`` + masks at source size;
- ``streamseg e2e``: ``segment_video``: the file in, ``tracks.json`` and ``overlay.mp4`` out;
- ``official``: ``SAM2VideoPredictor`` (``init_state`` on the clip's frames decoded to JPEG
  first, as it needs, + ``propagate_in_video``), bf16 autocast on CUDA as its demo;
- ``official VOS``: ``SAM2VideoPredictorVOS`` (``vos_optimized=True``, torch.compile of its
  components; ``--quick`` builds it without compiling: a CPU dry run would compile for
  minutes).

Figures: model load seconds, tracking fps over the frames after the first (``steady fps``:
compile and warm-up land on frame 0), whole-case wall seconds, and the mean mask IoU of
every case against ``official`` on the same frames. The table goes to stdout and
``OUT/gpu_bench.md``, the raw numbers to ``OUT/gpu_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Plan:
    device: str
    models: tuple[str, ...]
    counts: tuple[int, ...]
    width: int
    height: int
    frames: int
    image_size: int | None  # None = the model's native 1024
    compile_vos: bool
    out: Path


@dataclass
class CaseResult:
    model: str
    objects: int
    case: str
    load_s: float
    wall_s: float
    frame_s: list[float] = field(default_factory=list)
    iou_vs_official: float | None = None

    @property
    def steady_fps(self) -> float:
        times = self.frame_s[1:] or self.frame_s
        return 1.0 / statistics.median(times) if times else 0.0


# ----- inputs ----------------------------------------------------------------------------
def disc_centers(plan: Plan, index: int) -> list[tuple[int, int]]:
    """Centres of the 8 discs on frame ``index`` (they drift right by 2 px a frame)."""
    cols, rows = 4, 2
    return [
        (int((c + 0.5) * plan.width / cols) + 2 * index, int((r + 0.5) * plan.height / rows))
        for r in range(rows)
        for c in range(cols)
    ]


def make_clip(plan: Plan) -> tuple[Path, Path]:
    """The H.264 clip and a folder of its decoded frames as JPEG (for the official side)."""
    import av
    import cv2
    from PIL import Image

    from worker.video.source import open_video

    clip, jpegs = plan.out / "clip.mp4", plan.out / "jpeg"
    jpegs.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0 : plan.height, 0 : plan.width]
    background = np.stack([xx * 200 // plan.width, yy * 200 // plan.height, 80 + 0 * xx], -1)
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = plan.width, plan.height, "yuv420p"
        for index in range(plan.frames):
            rgb = np.ascontiguousarray(background.astype(np.uint8))
            for k, center in enumerate(disc_centers(plan, index)):
                color = (255 - 25 * k, 40 + 25 * k, 30 * k % 255)
                cv2.circle(rgb, center, max(4, plan.height // 10), color, -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with open_video(clip) as video:
        for frame in video:
            Image.fromarray(frame.rgb).save(jpegs / f"{frame.index:05d}.jpg", quality=95)
    return clip, jpegs


def checkpoint_for(plan: Plan, model: str) -> Path:
    from configs.models import get_model_spec
    from tests.support.random_checkpoint import make_random_checkpoint

    path = plan.out / f"random-{model}.pt"
    if not path.exists():
        make_random_checkpoint(get_model_spec(model), path, seed=0)
    return path


def prompts_for(plan: Plan, objects: int):
    from jobs.prompts import Prompt

    centers = disc_centers(plan, 0)[:objects]
    return [
        Prompt(i + 1, 0, points=(tuple(map(float, c)),), labels=(1,)) for i, c in enumerate(centers)
    ]


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


# ----- the cases ------------------------------------------------------------------------
def run_streamseg_track(plan: Plan, model: str, objects: int, clip: Path, masks: dict):
    from configs.models import get_model_spec
    from worker.engines.sam2video.model import load_model
    from worker.engines.sam2video.tracker import StreamingTracker
    from worker.video.source import open_video

    start = time.perf_counter()
    loaded = load_model(
        get_model_spec(model), checkpoint_for(plan, model), plan.image_size, plan.device
    )
    result = CaseResult(model, objects, "streamseg track", time.perf_counter() - start, 0.0)
    with open_video(clip) as video:
        tracker = StreamingTracker(loaded, num_frames=video.info.num_frames)
        for prompt in prompts_for(plan, objects):
            tracker.add_prompt(prompt)
        for frame in video:
            began = time.perf_counter()
            out = tracker.step(frame.rgb)
            _sync(plan.device)
            result.frame_s.append(time.perf_counter() - began)
            masks[frame.index] = {o: r.mask for o, r in out.objects.items()}
    result.wall_s = time.perf_counter() - start
    return result


def run_streamseg_e2e(plan: Plan, model: str, objects: int, clip: Path, masks: dict):
    from configs.settings import TrackerSettings
    from jobs.tracks import read_tracks
    from worker.engines.registry import load_engine
    from worker.pipeline.segment import SegmentRequest, segment_video

    start = time.perf_counter()
    settings = TrackerSettings(
        model=model, checkpoint=checkpoint_for(plan, model), image_size=plan.image_size,
        device=plan.device,
    )  # fmt: skip
    engine = load_engine(settings, show_progress=False)
    result = CaseResult(model, objects, "streamseg e2e", time.perf_counter() - start, 0.0)
    out_dir = plan.out / f"e2e-{model}-{objects}"
    stamps = [time.perf_counter()]

    def on_frame(progress) -> None:  # frame reports only, not those within a frame
        if getattr(progress, "objects_done", None) is not None:
            return
        if progress.frame == 0:  # a report before the first frame: tracking starts now
            stamps[:] = [time.perf_counter()]
        else:
            stamps.append(time.perf_counter())

    request = SegmentRequest(str(clip), out_dir, prompts_for(plan, objects))
    segment_video(request, engine.make_tracker, engine.model, on_frame)
    result.frame_s = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    result.wall_s = time.perf_counter() - start
    tracks = read_tracks(out_dir / "tracks.json")
    for index in range(plan.frames):
        masks[index] = tracks.masks_at(index)
    return result


def run_official(plan: Plan, model: str, objects: int, jpegs: Path, masks: dict, vos: bool):
    import torch
    from sam2.build_sam import build_sam2_video_predictor
    from sam2.sam2_video_predictor import SAM2VideoPredictorVOS

    from configs.models import get_model_spec

    extra = [f"++model.image_size={plan.image_size}"] if plan.image_size else []
    original = SAM2VideoPredictorVOS._compile_all_components
    if vos and not plan.compile_vos:  # dry run: the VOS code path without compiling it
        extra.append("++model.compile_image_encoder=false")
        SAM2VideoPredictorVOS._compile_all_components = lambda self: None
    start = time.perf_counter()
    try:
        predictor = build_sam2_video_predictor(
            get_model_spec(model).config, str(checkpoint_for(plan, model)), device=plan.device,
            hydra_overrides_extra=extra, vos_optimized=vos,
        )  # fmt: skip
    finally:
        SAM2VideoPredictorVOS._compile_all_components = original
    name = "official VOS" if vos else "official"
    result = CaseResult(model, objects, name, time.perf_counter() - start, 0.0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=plan.device.startswith("cuda"))
    with torch.inference_mode(), autocast:
        state = predictor.init_state(str(jpegs))
        for prompt in prompts_for(plan, objects):
            predictor.add_new_points_or_box(
                state, 0, prompt.obj_id, points=[list(prompt.points[0])], labels=[1]
            )
        began = time.perf_counter()
        for index, obj_ids, logits in predictor.propagate_in_video(state):
            frame_masks = (logits[:, 0] > 0).cpu().numpy()
            _sync(plan.device)
            result.frame_s.append(time.perf_counter() - began)
            masks[index] = dict(zip(obj_ids, frame_masks, strict=True))
            began = time.perf_counter()
    result.wall_s = time.perf_counter() - start
    return result


def mean_iou(masks: dict, reference: dict) -> float:
    values = [
        _iou(masks[t][o], reference[t][o])
        for t in reference
        for o in reference[t]
        if t in masks and o in masks[t]
    ]
    return float(np.mean(values)) if values else float("nan")


def run_plan(plan: Plan) -> list[CaseResult]:
    clip, jpegs = make_clip(plan)
    results = []
    for model in plan.models:
        for objects in plan.counts:
            masks: dict[str, dict] = {name: {} for name in ("track", "e2e", "official", "vos")}
            cases = [
                run_official(plan, model, objects, jpegs, masks["official"], vos=False),
                run_streamseg_track(plan, model, objects, clip, masks["track"]),
                run_streamseg_e2e(plan, model, objects, clip, masks["e2e"]),
                run_official(plan, model, objects, jpegs, masks["vos"], vos=True),
            ]
            for case, key in zip(cases, ("official", "track", "e2e", "vos"), strict=True):
                case.iou_vs_official = mean_iou(masks[key], masks["official"])
                print(
                    f"{case.model} {case.objects} obj {case.case}: {case.steady_fps:.1f} fps",
                    flush=True,
                )
            results += cases
    return results


def table(plan: Plan, results: list[CaseResult]) -> str:
    lines = [
        f"device={plan.device} image_size={plan.image_size or 1024} "
        f"clip={plan.width}x{plan.height}x{plan.frames} (H.264) vos_compiled={plan.compile_vos}",
        "",
        "| model | objects | case | load s | steady fps | wall s | x official | x VOS "
        "| IoU vs official |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(r.model, r.objects, r.case): r for r in results}
    for r in results:
        official = by_key[(r.model, r.objects, "official")].steady_fps
        vos = by_key[(r.model, r.objects, "official VOS")].steady_fps
        lines.append(
            f"| {r.model} | {r.objects} | {r.case} | {r.load_s:.1f} | {r.steady_fps:.2f} | "
            f"{r.wall_s:.1f} | {r.steady_fps / official:.2f}x | {r.steady_fps / vos:.2f}x | "
            f"{r.iou_vs_official:.3f} |"
        )
    return "\n".join(lines) + "\n"


def make_plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan(args.device, ("sam2.1-tiny",), (1,), 160, 96, 3, 128, False, args.out)
    models = ("sam2.1-tiny", "sam2.1-large")
    return Plan(args.device, models, (1, 8), 1920, 1080, args.frames, None, True, args.out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny clip and model: a dry run")
    parser.add_argument("--frames", type=int, default=120, help="clip length (full run)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    plan = make_plan(args)
    results = run_plan(plan)
    text = table(plan, results)
    print(text)
    (plan.out / "gpu_bench.md").write_text(text)
    raw = [asdict(r) | {"steady_fps": r.steady_fps} for r in results]
    (plan.out / "gpu_bench.json").write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
