"""Leave-one-sequence-out cross-validation of ``--model lite`` settings on DAVIS-2016 train.

    python tests/benchmarks/lite_cv.py cache              # backbone features, once, to /tmp
    python tests/benchmarks/lite_cv.py cache --precision bf16   # the same under bf16 autocast
    python tests/benchmarks/lite_cv.py score --step recent # J&F of each candidate, each sequence
    python tests/benchmarks/lite_cv.py report             # train and CV J&F of every step

Every candidate runs the real ``LiteTracker`` (readout, refinement, memory bank) from each
sequence's first ground-truth mask; only the frozen backbone is replaced by its cached output
(the same ``LiteTrunk`` on the same frames, computed once per sequence), so a candidate costs
the tracking without the network. Scores: ``jobs.metrics.evaluate_sequence`` (J&F mean).

Steps are cumulative: step k chooses among every candidate of steps 0..k. For each of the ten
sequences, the candidate with the best mean J&F on the other nine is scored on it; the mean of
those held-out scores is the cross-validated J&F, beside the train J&F (the best candidate's
mean on all ten). Scores are cached by candidate in ``--work``/scores.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from jobs.metrics import evaluate_sequence  # noqa: E402
from jobs.prompts import Prompt  # noqa: E402
from tests.benchmarks.bench_lite import DEFAULT_DATA, SEQUENCES, load_sequence  # noqa: E402
from worker.engines.lite.adapt import HeadParams  # noqa: E402
from worker.engines.lite.features import processing_size, to_input  # noqa: E402
from worker.engines.lite.motion import MotionParams  # noqa: E402
from worker.engines.lite.propagation import ReadoutParams  # noqa: E402
from worker.engines.lite.tracker import LiteParams, LiteTracker, cached_trunk  # noqa: E402

WORK = Path("/tmp/lite-cv")


class CachedTrunk:
    """Stands in for ``LiteTrunk``: returns one sequence's precomputed (f8, f16) in order."""

    def __init__(self, feats: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.feats = feats
        self.calls = 0

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f8, f16 = self.feats[self.calls]
        self.calls += 1
        return f8.float(), f16.float()


def cache_path(work: Path, name: str, short_side: int, precision: str = "fp32") -> Path:
    suffix = "" if precision == "fp32" else f"-{precision}"
    return work / f"feat{short_side}{suffix}" / f"{name}.pt"


@torch.inference_mode()
def cache(data: Path, work: Path, short_side: int, precision: str) -> None:
    """Each sequence's backbone output, float16-rounded; ``precision`` ``bf16``: computed
    under bf16 autocast, as ``LiteTracker`` runs the backbone with ``--precision bf16``."""
    trunk = cached_trunk()
    bf16 = precision == "bf16"
    for name in SEQUENCES:
        path = cache_path(work, name, short_side, precision)
        if path.exists():
            continue
        rgbs, _ = load_sequence(data, name)
        size = processing_size(*rgbs[0].shape[:2], short_side)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            feats = [tuple(t.half() for t in trunk(to_input(rgb, size))) for rgb in rgbs]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(feats, path)
        print(f"cached {name} ({len(rgbs)} frames)", flush=True)


@dataclass(frozen=True)
class Candidate:
    """Settings to score, and the precision of the cached backbone features they read."""

    params: LiteParams
    precision: str = "fp32"


def candidates() -> dict[str, dict[str, Candidate]]:
    """Step name -> candidate name -> settings, in the order the steps were built."""
    steps = {step: {k: Candidate(p) for k, p in cands.items()} for step, cands in _v1().items()}
    # the defaults before issue 14 (2 recent frames, radius 9), the base of its candidates
    shipped = LiteParams(num_recent=2, readout=ReadoutParams(radius=9))
    steps["bf16 backbone"] = {"recent2-radius9-bf16": Candidate(shipped, "bf16")}
    steps["window, radius (bf16)"] = {
        f"recent{n}-radius{r}-bf16": Candidate(
            replace(shipped, num_recent=n, readout=replace(shipped.readout, radius=r)), "bf16"
        )
        for n, r in ((4, 9), (6, 9), (8, 9), (10, 9), (2, 12), (4, 12), (6, 12), (10, 12))
    }
    # the settings shipped after the second study (6 recent frames) on float32 features
    steps["shipped, float32 backbone"] = {
        "recent6-radius9": Candidate(replace(shipped, num_recent=6))
    }
    # the second study's unscored windows (radius 12 for fast motion), float32 features
    steps["window, radius 12 (float32)"] = {
        f"recent{n}-radius{r}": Candidate(
            replace(shipped, num_recent=n, readout=replace(shipped.readout, radius=r))
        )
        for n, r in ((6, 12), (10, 9), (10, 12))
    }
    # fourth study: the windows around 10 frames at radius 12 that a quiet 2-core CPU runs at
    # 5 fps or more (one object, 854x480)
    steps["window around 10 frames, radius 12 (float32)"] = {
        f"recent{n}-radius{r}": Candidate(
            replace(shipped, num_recent=n, readout=replace(shipped.readout, radius=r))
        )
        for n, r in ((8, 12), (12, 12), (8, 15), (10, 15))
    }
    steps["bf16 scores"] = {
        f"recent{n}-radius{r}-bf16scores": Candidate(
            replace(
                shipped,
                num_recent=n,
                readout=replace(shipped.readout, radius=r, score_dtype=torch.bfloat16),
            )
        )
        for n, r in ((10, 12), (12, 12), (8, 15), (10, 15))
    }
    return steps


def _v1() -> dict[str, dict[str, LiteParams]]:
    """The steps of the first study (float32 backbone)."""
    # the settings before this study (2 recent frames, radius 6), the base of every candidate
    base = LiteParams(num_recent=2, readout=ReadoutParams(radius=6))

    def window(p: LiteParams, recent: int, radius: int) -> LiteParams:
        return replace(p, num_recent=recent, readout=replace(p.readout, radius=radius))

    def motion(p: LiteParams, **kw: object) -> LiteParams:
        return replace(p, motion=MotionParams(**kw))

    steps: dict[str, dict[str, LiteParams]] = {"current": {"current": base}}
    steps["recent window, radius"] = {
        f"recent{n}-radius{r}": window(base, n, r)
        for n, r in ((5, 6), (2, 9), (3, 9), (5, 9), (8, 9))
    }
    steps["DIS flow: warp, gate"] = {
        "warp": motion(base, warp=True),
        "gate0.3": motion(base, gate_floor=0.3),
        "warp-gate0.3": motion(base, warp=True, gate_floor=0.3),
        "recent5-radius9-warp-gate0.3": motion(window(base, 5, 9), warp=True, gate_floor=0.3),
    }
    steps["PCA off (centring only)"] = {
        "pca-off": replace(base, features=replace(base.features, dims=152)),
    }
    steps["first-frame head"] = {
        "head0.3": replace(base, head=HeadParams(floor=0.3)),
    }
    return steps


def score_one(cand: Candidate, data: Path, work: Path, name: str) -> float:
    rgbs, gts = load_sequence(data, name)
    path = cache_path(work, name, cand.params.features.short_side, cand.precision)
    feats = torch.load(path, weights_only=True)
    tracker = LiteTracker(cand.params, CachedTrunk(feats))
    tracker.add_prompt(Prompt(1, 0, mask=gts[0]))
    masks = [tracker.step(rgb).objects[1].mask for rgb in rgbs]
    seq = evaluate_sequence(({1: m} for m in masks), ({1: g} for g in gts), name)
    return float(seq.jf_mean)


def score_file(work: Path, label: str) -> Path:
    return work / "scores" / f"{label}.json"


def load_scores(work: Path, label: str, params: Candidate) -> dict[str, float] | None:
    """Per-sequence J&F of a fully scored candidate (else ``None``)."""
    path = score_file(work, label)
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    if state["params"] != repr(params):
        raise SystemExit(f"{path} was scored with other settings: delete it")
    return state["jf"] if set(state["jf"]) == set(SEQUENCES) else None


def score(steps: list[str], only: set[str], data: Path, work: Path) -> None:
    all_steps = candidates()
    for step in steps:
        for label, params in all_steps[step].items():
            if only and label not in only:
                continue
            path = score_file(work, label)
            state = json.loads(path.read_text()) if path.exists() else {"jf": {}, "seconds": {}}
            state["params"] = repr(params)
            for name in SEQUENCES:
                if name in state["jf"]:
                    continue
                start = time.perf_counter()
                state["jf"][name] = score_one(params, data, work, name)
                state["seconds"][name] = time.perf_counter() - start
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(state, indent=1))
            mean = sum(state["jf"].values()) / len(SEQUENCES)
            seconds = sum(state["seconds"].values())
            print(f"{step:24s} {label:30s} J&F {mean:.3f} ({seconds:.0f} s)", flush=True)


def _mean(scores: dict[str, float], names: list[str]) -> float:
    return sum(scores[n] for n in names) / len(names)


def leave_one_out(pool: dict[str, dict[str, float]]) -> list[tuple[str, str, float]]:
    """Per held-out sequence: (sequence, candidate best on the other nine, its held-out J&F)."""
    folds = []
    for name in SEQUENCES:
        rest = [n for n in SEQUENCES if n != name]
        chosen = max(pool, key=lambda label, rest=rest: _mean(pool[label], rest))
        folds.append((name, chosen, pool[chosen][name]))
    return folds


def report(work: Path, allowed: set[str]) -> str:
    """Markdown: per step, train and CV J&F; then the last step's folds. ``allowed``: if not
    empty, only these candidates may be chosen (e.g. those fast enough)."""
    pool: dict[str, dict[str, float]] = {}
    lines = ["| step | candidates scored | train J&F (best on all ten) | CV J&F (leave one out) |"]
    lines += ["| --- | ---: | --- | ---: |"]
    folds: list[tuple[str, str, float]] = []
    for step, cands in candidates().items():
        for label, params in cands.items():
            done = load_scores(work, label, params)
            if done is not None and (not allowed or label in allowed):
                pool[label] = done
        if not pool:
            continue
        best = max(pool, key=lambda label: _mean(pool[label], list(SEQUENCES)))
        folds = leave_one_out(pool)
        cv = sum(score for _, _, score in folds) / len(folds)
        train = _mean(pool[best], list(SEQUENCES))
        lines.append(f"| {step} | {len(pool)} | {train:.3f} (`{best}`) | {cv:.3f} |")
    lines += ["", "| candidate | " + " | ".join(SEQUENCES) + " | mean |"]
    lines += ["| --- |" + " ---: |" * (len(SEQUENCES) + 1)]
    for label, scores in pool.items():
        cells = " | ".join(f"{scores[n]:.3f}" for n in SEQUENCES)
        lines.append(f"| `{label}` | {cells} | {_mean(scores, list(SEQUENCES)):.3f} |")
    lines += ["", "| held-out sequence | chosen on the other nine | held-out J&F |"]
    lines += ["| --- | --- | ---: |"]
    lines += [f"| {name} | `{label}` | {score:.3f} |" for name, label, score in folds]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("cache", "score", "report"))
    parser.add_argument("--step", default="", help="comma list of steps to score")
    parser.add_argument("--only", default="", help="comma list of candidates to score/report")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--short-side", type=int, default=320)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="cache")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.action == "cache":
        cache(args.data, args.work, args.short_side, args.precision)
    elif args.action == "score":
        steps = [s for s in args.step.split(",") if s] or list(candidates())
        score(steps, {c for c in args.only.split(",") if c}, args.data, args.work)
    else:
        print(report(args.work, {c for c in args.only.split(",") if c}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
