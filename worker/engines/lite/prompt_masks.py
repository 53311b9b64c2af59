"""First masks from box and point prompts (the ``lite`` encoder has no prompt decoder).

* Box: OpenCV GrabCut (Rother, Kolmogorov and Blake, 2004) on a crop around the box, outside
  the box fixed to background. Inside, the frozen features say where to start: a stride-8 cell
  whose ``BOX_NEIGHBOURS`` most similar cells (cosine) lie mostly inside the box is probable
  foreground, one whose look-alikes lie mostly outside (the floor, wall or water the box also
  covers) probable background. Without features (or no such cell) GrabCut starts from the
  rectangle. Components smaller than ``MIN_PART`` of the largest are dropped; if nothing is
  left, the ellipse inscribed in the box is used.
* Points: the extent comes from the frozen features. Every stride-8 cell whose descriptor is
  closer (cosine) to some positive click's descriptor than ``POINT_SIMILARITY`` and than to
  every negative click, and that is connected to a positive click, is a probable foreground;
  its bounding box (grown by ``POINT_MARGIN``) bounds a GrabCut run initialised with that
  mask, with a disk around each positive click fixed to foreground and around each negative
  click fixed to background. The component(s) touching a positive click are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from configs.errors import InputError

GRABCUT_ITERATIONS = 5
BOX_MARGIN = 0.25  # crop around a box, as a fraction of its size
MIN_PART = 0.05
BOX_NEIGHBOURS = 10
POINT_SIMILARITY = 0.2
POINT_MARGIN = 0.3
CLICK_RADIUS = 0.01  # fixed disk around a click, as a fraction of the frame diagonal


def _crop(box: tuple[int, int, int, int], margin: float, hw: tuple[int, int]) -> tuple:
    x0, y0, x1, y1 = box
    mx, my = int((x1 - x0) * margin) + 2, int((y1 - y0) * margin) + 2
    return max(0, x0 - mx), max(0, y0 - my), min(hw[1], x1 + mx), min(hw[0], y1 + my)


def _grabcut(rgb: np.ndarray, init: np.ndarray, rect: tuple | None) -> np.ndarray:
    """GrabCut on ``rgb`` (RGB uint8) from ``init`` (GC_* labels) -> bool foreground."""
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    mode = cv2.GC_INIT_WITH_RECT if rect is not None else cv2.GC_INIT_WITH_MASK
    cv2.setRNGSeed(0)  # GrabCut's k-means draws from OpenCV's global RNG: same input, same mask
    try:
        cv2.grabCut(bgr, init, rect, bgd, fgd, GRABCUT_ITERATIONS, mode)
    except cv2.error:  # a degenerate colour model (e.g. a flat image): keep the init
        pass
    return (init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)


def _keep_large_parts(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    if count <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= MIN_PART * areas.max()) + 1
    return np.isin(labels, keep)


def box_mask(
    rgb: np.ndarray,
    box: Sequence[float],
    points: Sequence[tuple[float, float]] = (),
    labels: Sequence[int] = (),
    features: torch.Tensor | None = None,
) -> np.ndarray:
    """(H, W, 3) uint8 frame and (x0, y0, x1, y1) pixel box -> (H, W) bool first mask.

    With ``features`` ((C, h, w) unit descriptors) GrabCut starts from the box's
    feature-distinct cells (``_box_seed``), else from the rectangle alone. Clicks given with
    the box are then fixed (disks to foreground / background) and GrabCut runs again.
    """
    height, width = rgb.shape[:2]
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise InputError(f"box {tuple(box)} is empty or outside the {width}x{height} frame")
    cx0, cy0, cx1, cy1 = _crop((x0, y0, x1, y1), BOX_MARGIN, (height, width))
    crop = rgb[cy0:cy1, cx0:cx1]
    seed = None if features is None else _box_seed(features, (x0, y0, x1, y1), (height, width))
    if seed is None:
        init = np.zeros(crop.shape[:2], np.uint8)
        fg = _grabcut(crop, init, (x0 - cx0, y0 - cy0, x1 - x0, y1 - y0))
    else:
        init = np.full(crop.shape[:2], cv2.GC_BGD, np.uint8)
        inside = seed[y0:y1, x0:x1]
        init[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0] = np.where(
            inside, cv2.GC_PR_FGD, cv2.GC_PR_BGD
        )
        fg = _grabcut(crop, init, None)
    if len(points):
        _draw_clicks(init, points, labels, (cx0, cy0), _click_radius(rgb))
        fg = _grabcut(crop, init, None)
    fg = _keep_large_parts(fg)
    mask = np.zeros((height, width), bool)
    mask[cy0:cy1, cx0:cx1] = fg
    if not mask.any():
        ellipse = np.zeros((height, width), np.uint8)
        centre = ((x0 + x1) // 2, (y0 + y1) // 2)
        cv2.ellipse(ellipse, centre, ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, 1, -1)
        mask = ellipse.astype(bool)
    return mask


def _box_seed(
    features: torch.Tensor, box: tuple[int, int, int, int], hw: tuple[int, int]
) -> np.ndarray | None:
    """(H, W) bool: cells inside the box whose nearest feature neighbours are mostly inside.

    Background inside a box (floor, wall, water) continues outside it, so most of its
    ``BOX_NEIGHBOURS`` most similar cells lie outside; the object's lie inside. None when the
    box covers fewer than two cells or no cell qualifies.
    """
    _, h, w = features.shape
    rows = (np.arange(h) + 0.5) * hw[0] / h
    cols = (np.arange(w) + 0.5) * hw[1] / w
    in_rows = (rows >= box[1]) & (rows < box[3])
    in_cols = (cols >= box[0]) & (cols < box[2])
    inside = torch.from_numpy((in_rows[:, None] & in_cols[None, :]).reshape(-1))
    if int(inside.sum()) < 2 or bool(inside.all()):
        return None
    flat = features.float().flatten(1)  # (C, N)
    sims = flat[:, inside].t() @ flat  # (n_in, N)
    sims[torch.arange(sims.shape[0]), torch.nonzero(inside)[:, 0]] = -float("inf")
    neighbours = sims.topk(min(BOX_NEIGHBOURS, sims.shape[1] - 1), dim=1).indices
    fg = torch.zeros(h * w, dtype=torch.bool)
    fg[inside] = inside[neighbours].float().mean(dim=1) > 0.5
    if not bool(fg.any()):
        return None
    cells = fg.view(h, w).numpy().astype(np.uint8)
    return cv2.resize(cells, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def _click_radius(rgb: np.ndarray) -> int:
    return max(2, int(CLICK_RADIUS * np.hypot(rgb.shape[0], rgb.shape[1])))


def _draw_clicks(
    init: np.ndarray, points: Sequence, labels: Sequence[int], origin: tuple[int, int], radius: int
) -> None:
    """Fix a disk around each click in the GrabCut labels: foreground or background."""
    for (x, y), flag in zip(points, labels, strict=True):
        value = cv2.GC_FGD if flag == 1 else cv2.GC_BGD
        cv2.circle(init, (int(x) - origin[0], int(y) - origin[1]), radius, int(value), -1)


def _cells(points: np.ndarray, hw: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """(N, 2) pixel (x, y) -> (N, 2) int (row, col) of the stride-8 cells."""
    rows = np.clip((points[:, 1] * grid[0] / hw[0]).astype(int), 0, grid[0] - 1)
    cols = np.clip((points[:, 0] * grid[1] / hw[1]).astype(int), 0, grid[1] - 1)
    return np.stack([rows, cols], axis=1)


def _similar_region(features: torch.Tensor, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """(C, h, w) unit features, click cells -> (h, w) bool region grown from positive clicks."""
    flat = features.float().flatten(1)  # (C, h*w)
    width = features.shape[2]

    def best(cells: np.ndarray) -> torch.Tensor:
        if len(cells) == 0:
            return torch.full((flat.shape[1],), -float("inf"))
        clicked = flat[:, cells[:, 0] * width + cells[:, 1]]  # (C, N)
        return (clicked.t() @ flat).amax(dim=0)

    sim_pos, sim_neg = best(pos), best(neg)
    region = ((sim_pos > POINT_SIMILARITY) & (sim_pos > sim_neg)).view(features.shape[1:])
    region = region.numpy().astype(np.uint8)
    region[pos[:, 0], pos[:, 1]] = 1
    _, labels = cv2.connectedComponents(region, connectivity=8)
    return np.isin(labels, np.unique(labels[pos[:, 0], pos[:, 1]]))


def points_mask(
    rgb: np.ndarray,
    points: Sequence[tuple[float, float]],
    labels: Sequence[int],
    features: torch.Tensor,
) -> np.ndarray:
    """First mask from clicks.

    Args:
        rgb: (H, W, 3) uint8 frame.
        points: (x, y) pixel clicks; ``labels``: 1 positive, 0 negative.
        features: (C, h, w) unit-length descriptors of the frame on the stride-8 grid.

    Returns:
        (H, W) bool mask (see the module docstring for the method).
    """
    height, width = rgb.shape[:2]
    coords = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    flags = np.asarray(labels, dtype=int).reshape(-1)
    if len(coords) != len(flags) or not (flags == 1).any():
        raise InputError("a point prompt needs at least one positive point and one label each")
    cells = _cells(coords, (height, width), tuple(features.shape[1:]))
    region = _similar_region(features, cells[flags == 1], cells[flags != 1])
    region = cv2.resize(region.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    ys, xs = np.nonzero(region)
    crop = _crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), POINT_MARGIN, (height, width))
    cx0, cy0, cx1, cy1 = crop
    init = np.where(region[cy0:cy1, cx0:cx1] > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    _draw_clicks(init, coords, flags, (cx0, cy0), _click_radius(rgb))
    fg = _grabcut(rgb[cy0:cy1, cx0:cx1], init, None)
    mask = np.zeros((height, width), bool)
    mask[cy0:cy1, cx0:cx1] = fg
    _, parts = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    clicked = [
        parts[min(int(y), height - 1), min(int(x), width - 1)]
        for (x, y), f in zip(coords, flags, strict=True)
        if f == 1
    ]
    return np.isin(parts, [c for c in clicked if c > 0])
