"""The layer contracts in pyproject.toml hold for the tree, and each fails on a planted
back-edge (a copy of the packages with one import added), so the check cannot pass vacuously."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGES = ("configs", "memory", "jobs", "worker")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True
    )


def test_the_tree_keeps_every_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "Contracts: 3 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "edge"),
    [
        ("configs/models.py", "import worker.cli", "configs.models -> worker.cli"),
        ("memory/policy.py", "from jobs import media", "memory.policy -> jobs.media"),
        # a lazy import inside a function counts as much as a top-level one
        (
            "jobs/overlay.py",
            "def _late():\n    import worker.video.source",
            "jobs.overlay -> worker",
        ),
        (
            "worker/engines/lite/refine.py",
            "from worker.engines.sam2video import tracker",
            "worker.engines.lite.refine -> worker.engines.sam2video.tracker",
        ),
        (
            "worker/pipeline/stages.py",
            "import worker.runtimes.queue.job_runner",
            "worker.pipeline.stages -> worker.runtimes.queue.job_runner",
        ),
    ],
)
def test_a_planted_back_edge_breaks_a_contract(
    tmp_path: Path, module: str, planted: str, edge: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / module, "a") as handle:
        handle.write(f"\n\n{planted}  # planted back-edge\n")
    result = _lint(tmp_path)
    assert result.returncode == 1
    assert "BROKEN" in result.stdout and edge in result.stdout


def test_the_pipeline_and_the_engine_contract_load_no_torch() -> None:
    """Only an engine loads torch: the pipeline, the contract and the registry do not."""
    code = (
        "import sys, worker.pipeline.segment, worker.engines.contract, worker.engines.registry;"
        "print(sorted(m for m in ('torch', 'sam2') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
