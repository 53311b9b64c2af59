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


@pytest.fixture(scope="module")
def hiera_tiny():
    """sam2.1-tiny's Hiera trunk (its config's sizes), random weights."""
    from sam2.modeling.backbones.hieradet import Hiera

    torch.manual_seed(0)
    trunk = Hiera(
        embed_dim=96, num_heads=1, stages=[1, 2, 7, 2], global_att_blocks=[5, 7, 9],
        window_pos_embed_bkg_spatial_size=[7, 7], window_spec=[8, 4, 14, 7],
    )  # fmt: skip
    return trunk.eval()


@pytest.mark.parametrize(
    ("size", "autocast"), [((256, 256), False), ((224, 320), False), ((256, 256), True)]
)
def test_cached_hiera_pos_embed_gives_the_trunks_own_features(hiera_tiny, size, autocast):
    from worker.engines.sam2video.position_cache import CachedHieraPosEmbed

    image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    official = hiera_tiny._get_pos_embed
    cached = CachedHieraPosEmbed(official)
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        expected = hiera_tiny(image)
        hiera_tiny._get_pos_embed = cached
        try:
            first, second = hiera_tiny(image), hiera_tiny(image)  # fills, then reads the cache
        finally:
            del hiera_tiny._get_pos_embed  # the class's method again
    assert len(cached._cache) == 1
    for got in (first, second):
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_hiera_pos_embed_cache_is_per_grid_and_autocast_state(hiera_tiny):
    from worker.engines.sam2video.position_cache import CachedHieraPosEmbed

    cached = CachedHieraPosEmbed(hiera_tiny._get_pos_embed)
    with torch.inference_mode():
        a = cached((64, 64))
        assert cached((64, 64)) is a
        assert cached((56, 80)).shape == (1, 56, 80, 96)
        with torch.autocast("cpu", torch.bfloat16):
            cached((64, 64))
    assert len(cached._cache) == 3
    assert torch.equal(a, hiera_tiny._get_pos_embed((64, 64)))
