"""``streamseg CMD --help`` wall time: an earlier commit against the working tree, interleaved.

    python tests/benchmarks/bench_cli_help.py --before e47e1d1 --runs 3

The earlier commit is unpacked with ``git archive`` into a temporary folder; each round runs
every command's ``--help`` once in each tree, alternating, in a fresh interpreter (the
project's venv). Medians and ratios are printed, with the time of a bare ``python -c pass``
as the floor that no import work can go under.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("", "segment", "annotate", "eval", "submit", "live", "demo")


def _seconds(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="e47e1d1", help="commit to compare with")
    parser.add_argument("--runs", type=int, default=3, help="rounds (default: 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        archive = subprocess.run(
            ["git", "archive", args.before], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
        trees = {"before": Path(scratch), "now": ROOT}
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):
            times.setdefault(("bare", ""), []).append(
                _seconds([sys.executable, "-c", "pass"], ROOT)
            )
            for command in COMMANDS:
                for name, tree in trees.items():
                    argv = [sys.executable, "-m", "worker.cli", *command.split(), "--help"]
                    times.setdefault((name, command), []).append(_seconds(argv, tree))
    bare = statistics.median(times[("bare", "")])
    print(f"bare `python -c pass`: {bare:.2f} s (median of {args.runs})")
    print(f"| command | {args.before} | now | ratio |\n|---|---|---|---|")
    for command in COMMANDS:
        before = statistics.median(times[("before", command)])
        now = statistics.median(times[("now", command)])
        label = f"`streamseg {command} --help`".replace("  ", " ")
        print(f"| {label} | {before:.2f} s | {now:.2f} s | {before / now:.1f}x |")


if __name__ == "__main__":
    main()
