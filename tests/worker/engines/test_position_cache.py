"""The cached position encodings give sam2's own values, for the shapes and dtypes it sees."""

from __future__ import annotations

import pytest
import torch
from sam2.modeling.position_encoding import PositionEmbeddingSine

from worker.engines.sam2video.position_cache import CachedPositionEncoding


@pytest.mark.parametrize(
    ("batch", "channels", "size", "dtype"),
    [
        (1, 256, (128, 128), torch.float32),
        (3, 256, (32, 32), torch.float32),
        (1, 96, (64, 48), torch.bfloat16),
        (8, 64, (32, 32), torch.bfloat16),
    ],
)
def test_cached_position_encoding_matches_sam2(batch, channels, size, dtype):
    official = PositionEmbeddingSine(num_pos_feats=channels)
    cached = CachedPositionEncoding(PositionEmbeddingSine(num_pos_feats=channels))
    x = torch.zeros(batch, 3, *size, dtype=dtype)
    expected = official(x).to(dtype)  # what the FPN neck and memory encoder compute
    for _ in range(2):  # the first call fills the cache, the second reads it
        got = cached(x).to(dtype)
        assert got.shape == (batch, channels, *size) and got.dtype == dtype
        assert torch.equal(got, expected)


def test_cache_is_per_shape_and_dtype():
    cached = CachedPositionEncoding(PositionEmbeddingSine(num_pos_feats=64))
    small = cached(torch.zeros(1, 3, 8, 8))
    wide = cached(torch.zeros(2, 3, 8, 16, dtype=torch.bfloat16))
    assert small.shape == (1, 64, 8, 8) and small.dtype == torch.float32
    assert wide.shape == (2, 64, 8, 16) and wide.dtype == torch.bfloat16
    assert len(cached._cache) == 2
