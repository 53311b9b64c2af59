"""Checkpoints load into exactly their weights, whichever of torch's two file formats holds
them (zip archives are memory-mapped, older pickle files read whole)."""

from __future__ import annotations

import zipfile

import pytest
import torch

from configs.models import get_model_spec
from tests.conftest import TEST_IMAGE_SIZE, TEST_MODEL
from worker.engines.sam2video.model import load_model


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip (mmap)", "legacy pickle"])
def test_checkpoint_formats_load_their_exact_weights(zip_format, sam2_checkpoint, tmp_path):
    state = torch.load(sam2_checkpoint, map_location="cpu", weights_only=True)["model"]
    path = tmp_path / "weights.pt"
    torch.save({"model": state}, path, _use_new_zipfile_serialization=zip_format)
    assert zipfile.is_zipfile(path) is zip_format
    loaded = load_model(get_model_spec(TEST_MODEL), path, TEST_IMAGE_SIZE, "cpu", "fp32")
    got = loaded.model.state_dict()
    assert set(got) == set(state)
    assert all(torch.equal(got[name], tensor) for name, tensor in state.items())
    # The weights are the model's own copies, not views of the mapped file.
    path.unlink()
    assert all(torch.equal(got[name], tensor) for name, tensor in state.items())
