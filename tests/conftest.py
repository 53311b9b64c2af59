"""Session-wide fixtures: the shared real data folder and CPU thread limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``../shared/data`` next to the project (or ``$STREAMSEG_SHARED/data``), if present."""
    root = Path(os.environ.get("STREAMSEG_SHARED", PROJECT_ROOT.parent / "shared"))
    data = root / "data"
    return data if data.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared test data not found (set STREAMSEG_SHARED to the shared/ folder)")
    return data


@pytest.fixture(scope="session")
def davis_root(shared_data: Path) -> Path:
    return shared_data / "davis2016-train"


@pytest.fixture(scope="session")
def videos_dir(shared_data: Path) -> Path:
    return shared_data / "videos"
