"""Session-wide fixtures: the shared real data folder, CPU thread limits and stop signals."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

# Before torch loads OpenMP: busy-waiting threads make CPU inference ~10x slower on shared cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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


# ----- SAM 2 models with random weights (one build per session) -------------------------------
TEST_MODEL = "sam2.1-tiny"
TEST_IMAGE_SIZE = 256


def _ignore(signum: int, frame: object) -> None:
    """A handler that does nothing (this process keeps ignoring the signal)."""


@pytest.fixture(scope="session", autouse=True)
def _children_get_default_stop_signals() -> Iterator[None]:
    """Run as a background job of a script (``make test &``) or under ``nohup``, this process
    starts with SIGINT or SIGHUP ignored, and every child it starts would inherit that (exec
    keeps an ignored signal ignored, and the CLI, like Python, leaves one ignored): a test's
    Ctrl-C to a child would then be lost. A handler of this process is reset to the default
    across exec, so one that does nothing lets the children get the default, as from an
    interactive shell, while a signal to this process still stops nothing (it is delivered,
    though: a blocking call in this process may then return EINTR)."""
    from worker.runtimes.stopping import StopRequest

    ignored = [sig for sig in StopRequest.SIGNALS if signal.getsignal(sig) == signal.SIG_IGN]
    for signum in ignored:
        signal.signal(signum, _ignore)
    yield
    for signum in ignored:
        signal.signal(signum, signal.SIG_IGN)


@pytest.fixture(scope="session", autouse=True)
def _limit_threads() -> None:
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def sam2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random ``sam2.1-tiny`` checkpoint (``{"model": state_dict}``)."""
    from configs.models import get_model_spec
    from tests.support.random_checkpoint import make_random_checkpoint

    path = tmp_path_factory.mktemp("checkpoints") / "sam2.1_hiera_tiny_random.pt"
    return make_random_checkpoint(get_model_spec(TEST_MODEL), path, seed=0)


@pytest.fixture(scope="session")
def loaded_model(sam2_checkpoint: Path):
    """The test checkpoint loaded by streamseg on CPU at the small test image size, in float32
    (exact against the official predictor; ``auto`` picks bf16 on AMX / AVX-512 BF16 CPUs)."""
    from configs.models import get_model_spec
    from worker.engines.sam2video.model import cached_model

    spec = get_model_spec(TEST_MODEL)
    return cached_model(spec, sam2_checkpoint, TEST_IMAGE_SIZE, "cpu", precision="fp32")


@pytest.fixture(scope="session")
def official_predictor(sam2_checkpoint: Path):
    """The official ``SAM2VideoPredictor`` with the same checkpoint and image size."""
    from sam2.build_sam import build_sam2_video_predictor

    from configs.models import get_model_spec

    return build_sam2_video_predictor(
        get_model_spec(TEST_MODEL).config,
        str(sam2_checkpoint),
        device="cpu",
        hydra_overrides_extra=[f"++model.image_size={TEST_IMAGE_SIZE}"],
    )


def frames_folder(tmp: Path, sequence_dir: Path, start: int, count: int) -> Path:
    """A folder of symlinks to frames ``start .. start+count-1`` of a JPEG sequence."""
    tmp.mkdir(parents=True, exist_ok=True)
    frames = sorted(sequence_dir.glob("*.jpg"))[start : start + count]
    for i, frame in enumerate(frames):
        (tmp / f"{i:05d}.jpg").symlink_to(frame)
    return tmp


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.gpu`` tests skip cleanly where CUDA is absent."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
