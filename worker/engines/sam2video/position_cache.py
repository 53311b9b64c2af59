"""SAM 2's sine position encodings, served as views of one cached tensor per shape and dtype.

``sam2``'s ``PositionEmbeddingSine`` caches its (C, H, W) encoding per size, but every call
returns ``cache[...][None].repeat(B, 1, 1, 1)``, a fresh copy, which its callers (the FPN neck
and the memory encoder) then cast to the features' dtype, a second copy. At 512 px that is
256 x 128 x 128 float32 (16 MiB) copied twice per frame for the stride-4 level alone, which
the tracker never reads. :class:`CachedPositionEncoding` wraps the module and returns the same
values, cast once to the caller's dtype and cached, as an expanded (B, C, H, W) view: the
caller's ``.to(dtype)`` is then a no-op. The values are the wrapped module's own
(``test_cached_position_encoding_matches_sam2``). The views are read-only in spirit: ``sam2``
never writes into a position encoding in place.

Hiera's absolute position embedding is the same kind of waste: ``Hiera._get_pos_embed``
interpolates its (1, C, 7, 7) parameter bicubically to the stride-4 grid and adds the tiled
window embedding on every frame (15 ms at 512 px on these CPUs, for the same (1, H/4, W/4, C)
float32 tensor each time). :class:`CachedHieraPosEmbed` computes it once per grid size, with
the trunk's own method, and hands back that tensor.
"""

from __future__ import annotations

import torch


class CachedPositionEncoding(torch.nn.Module):
    """``encoding(x)`` for x (B, C', H, W): the wrapped encoding (B, C, H, W) in x's dtype."""

    def __init__(self, encoding: torch.nn.Module) -> None:
        super().__init__()
        self.encoding = encoding
        self._cache: dict[tuple, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.shape[-2], x.shape[-1], x.dtype, x.device)
        pos = self._cache.get(key)
        if pos is None:
            pos = self.encoding(x[:1]).to(x.dtype)[0]
            self._cache[key] = pos
        return pos[None].expand(x.shape[0], -1, -1, -1)


class CachedHieraPosEmbed:
    """Stands in for a Hiera trunk's ``_get_pos_embed(hw)``: its (1, h, w, C) result, computed
    by the trunk's own method once per grid size, device and autocast state."""

    def __init__(self, get_pos_embed) -> None:
        self.get_pos_embed = get_pos_embed
        self._cache: dict[tuple, torch.Tensor] = {}

    def __call__(self, hw: tuple[int, int]) -> torch.Tensor:
        device = self.get_pos_embed.__self__.pos_embed.device
        key = (int(hw[0]), int(hw[1]), device, _autocast_state(device.type))
        pos = self._cache.get(key)
        if pos is None:
            pos = self._cache[key] = self.get_pos_embed(hw)
        return pos


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype]:
    if not torch.amp.is_autocast_available(device_type):
        return False, torch.float32
    return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)


def cache_position_encodings(model: torch.nn.Module) -> None:
    """Wrap the image encoder neck's and the memory encoder's position encodings, and serve
    the Hiera trunk's position embedding from a cache (in place; call after the weights are
    loaded: the cached values are computed from them)."""
    for owner in (model.image_encoder.neck, model.memory_encoder):
        if not isinstance(owner.position_encoding, CachedPositionEncoding):
            owner.position_encoding = CachedPositionEncoding(owner.position_encoding)
    trunk = model.image_encoder.trunk
    if hasattr(trunk, "_get_pos_embed") and not isinstance(
        trunk._get_pos_embed, CachedHieraPosEmbed
    ):
        trunk._get_pos_embed = CachedHieraPosEmbed(trunk._get_pos_embed)
