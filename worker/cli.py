"""The ``streamseg`` command: one sub-command per module in ``worker.commands``.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``handler=callable(args) -> int``. Heavy imports (torch, sam2) stay inside handlers so that
``streamseg --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from jobs.errors import StreamsegError

COMMAND_MODULES = (
    "worker.commands.segment",
    "worker.commands.eval",
    "worker.commands.live",
    "worker.commands.queue",
    "worker.commands.worker",
    "worker.commands.annotate",
    "worker.commands.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamseg",
        description="Video segmentation and tracking with SAM 2 and a streaming memory bank.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue  # command not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # OpenMP's busy-wait makes multi-threaded CPU inference ~10x slower on shared cores.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except StreamsegError as error:
        print(f"streamseg: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamseg: interrupted; no output was marked complete", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
