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


def cache_position_encodings(model: torch.nn.Module) -> None:
    """Wrap the image encoder neck's and the memory encoder's position encodings (in place)."""
    for owner in (model.image_encoder.neck, model.memory_encoder):
        if not isinstance(owner.position_encoding, CachedPositionEncoding):
            owner.position_encoding = CachedPositionEncoding(owner.position_encoding)
