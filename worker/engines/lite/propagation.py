"""Memory readout: attention from the current frame to memory frames, top-k in a local window.

For every position of the current frame's stride-8 grid, candidates are the positions of every
memory frame within ``radius`` cells (Chebyshev distance) of the same place. Conditioning
(prompted) frames also offer every position of their stride-16 grid, so an object that moved
far or was occluded can be found again. The affinities (dot products of unit-length features
divided by ``temperature``) are ranked over all candidates together; the ``top_k`` best are
softmax-weighted and carry the memory frames' soft masks to the current frame.

The local window is evaluated tile by tile with batched matrix products: a ``tile`` x ``tile``
block of queries meets a (tile + 2 radius)^2 key patch, each query's own window is a strided
view of its tile's scores (``own_windows``), and positions outside the frame score
``OUTSIDE_SCORE`` through an extra key channel (``outside_channel``). Key patches are built once
per memory frame (``frame_keys``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from memory.lite_entries import FrameKeys

# an out-of-frame key position's affinity: unit-vector cosines lie in [-1, 1], so it is never
# among the top k while a query has k candidates in the frame, and its softmax weight is 0
OUTSIDE_SCORE = -1.0e4


@dataclass(frozen=True)
class ReadoutParams:
    """Local-window top-k attention settings (window in stride-8 cells; the radius comes from
    cross-validation, ``worker.engines.lite.tracker.LiteParams``). ``score_dtype``: the dtype
    the key patches are stored in and the affinities computed in (``torch.bfloat16`` where
    the CPU multiplies bf16 natively, ``lite_precision``); they are ranked in float32."""

    radius: int = 15
    top_k: int = 10
    temperature: float = 0.2
    tile: int = 8
    global_conditioning: bool = True
    score_dtype: torch.dtype = torch.float32  # of the key patches and the score products


@lru_cache(maxsize=8)
def window_index(tile: int, radius: int) -> torch.Tensor:
    """int64 (tile^2, (2 radius + 1)^2): patch positions inside each query's own window."""
    side = tile + 2 * radius
    win = 2 * radius + 1
    qy, qx = torch.meshgrid(torch.arange(tile), torch.arange(tile), indexing="ij")
    oy, ox = torch.meshgrid(torch.arange(win), torch.arange(win), indexing="ij")
    ky = qy.reshape(-1, 1) + oy.reshape(1, -1)
    kx = qx.reshape(-1, 1) + ox.reshape(1, -1)
    return ky * side + kx


def _padded(size: int, tile: int) -> int:
    return -(-size // tile) * tile


def patches(x: torch.Tensor, tile: int, radius: int) -> torch.Tensor:
    """(C, h, w) -> (L, C, (tile + 2 radius)^2) overlapping patches, zero outside the frame."""
    c, h, w = x.shape
    hp, wp = _padded(h, tile), _padded(w, tile)
    x = F.pad(x, (radius, wp - w + radius, radius, hp - h + radius))
    side = tile + 2 * radius
    view = x.unfold(1, side, tile).unfold(2, side, tile)  # (C, Ly, Lx, side, side)
    return view.permute(1, 2, 0, 3, 4).reshape(-1, c, side * side).contiguous()


def query_tiles(query: torch.Tensor, tile: int) -> torch.Tensor:
    """(C, h, w) -> (L, tile^2, C) tiles of the zero-padded query."""
    c, h, w = query.shape
    q = F.pad(query, (0, _padded(w, tile) - w, 0, _padded(h, tile) - h))
    view = q.unfold(1, tile, tile).unfold(2, tile, tile)  # (C, Ly, Lx, tile, tile)
    return view.permute(1, 2, 3, 4, 0).reshape(-1, tile * tile, c).contiguous()


def untile(x: torch.Tensor, h: int, w: int, tile: int) -> torch.Tensor:
    """(L, tile^2, V) -> (V, h, w)."""
    ly, lx = _padded(h, tile) // tile, _padded(w, tile) // tile
    v = x.shape[2]
    out = x.view(ly, lx, tile, tile, v).permute(4, 0, 2, 1, 3).reshape(v, ly * tile, lx * tile)
    return out[:, :h, :w]


def coarse_keys(keys: torch.Tensor) -> torch.Tensor:
    """(C, h, w) unit keys -> (C, ceil(h/2) * ceil(w/2)) unit keys on the stride-16 grid."""
    pooled = F.avg_pool2d(keys[None], 2, ceil_mode=True)[0]
    return F.normalize(pooled, dim=0).flatten(1)


def coarse_values(values: torch.Tensor) -> torch.Tensor:
    """(V, h, w) soft masks -> (V, n16) on the stride-16 grid."""
    return F.avg_pool2d(values[None], 2, ceil_mode=True)[0].flatten(1)


def frame_keys(keys: torch.Tensor, params: ReadoutParams) -> FrameKeys:
    """Arrange one frame's (C, h, w) unit keys for reading (done once per memory frame): key
    patches (L, C + 1, S) whose last channel is ``outside_channel``, and coarse keys."""
    raw = keys.to(torch.float16)
    full = raw.float()  # what a reloaded state rebuilds from, so resuming is exact
    _, h, w = full.shape
    local = patches(full, params.tile, params.radius)
    local = torch.cat([local, outside_channel(h, w, params.tile, params.radius)], dim=1)
    dtype = params.score_dtype
    return FrameKeys(raw, local.to(dtype), coarse_keys(full).to(dtype))


@lru_cache(maxsize=8)
def outside_channel(h: int, w: int, tile: int, radius: int) -> torch.Tensor:
    """float32 (L, 1, S): 0 where a patch position lies inside the frame, ``OUTSIDE_SCORE``
    outside. Key patches carry it as an extra channel and queries a constant 1 there, so the
    score product itself gives out-of-frame positions ``OUTSIDE_SCORE`` (in-frame scores are
    unchanged: the channel adds 1 x 0), with no mask applied to every window afterwards."""
    inside = patches(torch.ones(1, h, w), tile, radius)  # (L, 1, S)
    return torch.where(inside > 0, 0.0, OUTSIDE_SCORE)


def local_scores(
    q: torch.Tensor,
    keys: FrameKeys,
    params: ReadoutParams,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """(L, T, C + 1) query tiles (last channel 1) -> (L, T, W^2) affinities to one frame's
    window, ``OUTSIDE_SCORE`` outside the frame (written into ``out``, e.g. a slice of a
    larger table, when given)."""
    s = torch.bmm(q, keys.patches)  # (L, T, S)
    n_l, n_t, _ = s.shape
    win = 2 * params.radius + 1
    if out is None:
        out = s.new_empty(n_l, n_t, win * win)
    out.view(n_l, params.tile, params.tile, win, win).copy_(own_windows(s, params))
    return out


def own_windows(s: torch.Tensor, params: ReadoutParams) -> torch.Tensor:
    """(L, T, S) scores against key patches -> a (L, tile, tile, W, W) view of each query's
    own window. Query (ty, tx)'s window starts at patch cell (ty, tx), so its offset in ``s``
    is affine in (ty, tx): the view has constant strides, and copying it is a strided copy
    instead of an index ``gather`` (the same elements as ``window_index`` selects)."""
    n_l, n_t, n_s = s.shape
    tile, win = params.tile, 2 * params.radius + 1
    side = tile + 2 * params.radius
    strides = (n_t * n_s, tile * n_s + side, n_s + 1, side, 1)
    return s.as_strided((n_l, tile, tile, win, win), strides, s.storage_offset())


@dataclass(frozen=True)
class MemoryFrame:
    """What the readout needs from one memory frame.

    ``values``: (V, h, w) float32 soft masks (channel 0 background, then one per object);
    ``conditioning``: a prompted frame, whose coarse keys are also searched globally.
    """

    keys: FrameKeys
    values: torch.Tensor
    conditioning: bool


def readout(query: torch.Tensor, memory: list[MemoryFrame], params: ReadoutParams) -> torch.Tensor:
    """Carry memory soft masks to the current frame.

    Args:
        query: (C, h, w) float32 unit-length features of the current frame (stride-8 grid).
        memory: the memory frames (keys arranged by ``frame_keys``), at least one.
        params: window radius, top-k, temperature, tile size, global search.

    Returns:
        (V, h, w) float32: per position, the softmax-weighted values of the top-k matches.

    Every frame's candidate scores are written side by side into one (L, T, frames x W^2 +
    global positions) table and ranked by one ``topk``: PyTorch's CPU ``topk`` costs ~10 ns
    an element on rows of a few hundred and ~2.4 ns on rows of a few thousand, so one long
    row per query is 2.6x cheaper than a ``topk`` per frame and a second over the frames'
    winners (84 -> 33 ms a frame with 6 recent frames at 854x480). The table is bounded: the
    memory holds a fixed number of frames.
    """
    _, h, w = query.shape
    q = query_tiles(query, params.tile)  # (L, T, C)
    q_local = torch.cat([q, q.new_ones(q.shape[0], q.shape[1], 1)], dim=2)  # (L, T, C + 1)
    q, q_local = q.to(params.score_dtype), q_local.to(params.score_dtype)
    parts = [(m, False) for m in memory]
    parts += [(m, True) for m in memory if m.conditioning and params.global_conditioning]
    widths = [
        m.keys.coarse.shape[1] if whole else (2 * params.radius + 1) ** 2 for m, whole in parts
    ]
    scores = query.new_empty(q.shape[0], q.shape[1], sum(widths))
    tables, rows, column, row = [], [], 0, 0
    for (m, whole), width in zip(parts, widths, strict=True):
        out = scores[:, :, column : column + width]
        column += width
        table, table_rows = (
            _global_part(q, m, out) if whole else _local_part(q_local, m, params, out)
        )
        tables.append(table)
        rows.append(table_rows + row)
        row += table.shape[1]
    return _weighted(scores, torch.cat(rows, dim=1), torch.cat(tables, dim=1), params, (h, w))


def _weighted(
    scores: torch.Tensor, rows: torch.Tensor, table: torch.Tensor, params: ReadoutParams, hw
) -> torch.Tensor:
    """Scores (L, T, N), each candidate's row (T, N) in the values table (L, S, V) -> the
    softmax-weighted values of each query's top-k candidates, (V, h, w)."""
    top, idx = scores.topk(params.top_k, dim=2)  # (L, T, k)
    n_l, n_t, k = idx.shape
    table_idx = rows[torch.arange(n_t)[None, :, None], idx]  # (L, T, k)
    val = table.gather(1, table_idx.reshape(n_l, -1, 1).expand(-1, -1, table.shape[2]))
    weights = torch.softmax(top / params.temperature, dim=2)
    out = (val.view(n_l, n_t, k, -1) * weights[..., None]).sum(dim=2)  # (L, T, V)
    return untile(out, *hw, params.tile)


def _local_part(
    q: torch.Tensor, m: MemoryFrame, params: ReadoutParams, out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of (L, T, C + 1) query tiles in one frame's local windows into ``out`` (L, T, W^2);
    returns that frame's values per tile (L, S, V) and each candidate's row there (T, W^2)."""
    local_scores(q, m.keys, params, out)
    table = patches(m.values.float(), params.tile, params.radius).transpose(1, 2)  # (L, S, V)
    return table, window_index(params.tile, params.radius)


def _global_part(
    q: torch.Tensor, m: MemoryFrame, out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of (L, T, C) query tiles over a prompted frame's whole stride-16 grid into
    ``out`` (L, T, n16); returns its values (L, n16, V) (one table, viewed per tile) and each
    candidate's row there (T, n16)."""
    out.copy_(torch.matmul(q, m.keys.coarse))
    coarse = coarse_values(m.values.float()).t()  # (n16, V)
    table_rows = torch.arange(coarse.shape[0]).expand(q.shape[1], -1)
    return coarse.expand(q.shape[0], -1, -1), table_rows
