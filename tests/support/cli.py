"""Running the ``streamseg`` command in-process, its summary table, and a prompt mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from worker.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """``streamseg ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def row(out: str, name: str) -> list[str]:
    """The summary row of video ``name`` split into its columns (detail last, whole)."""
    for line in out.splitlines():
        if line.split(" ", 1)[0] == name:
            return line.split(None, 6)
    raise AssertionError(f"no summary row for {name!r} in:\n{out}")


def box_mask_png(path: Path, width: int, height: int) -> Path:
    """A mask PNG (255 inside) of the box from the frame's quarter to its half, both ways."""
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[height // 4 : height // 2, width // 4 : width // 2] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(path)
    return path
