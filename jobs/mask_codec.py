"""Masks as files hold them: COCO RLE both ways, and the one rule for a mask's box.

Every module that encodes or decodes a mask (``tracks.json``, the YouTube-VIS export, the
pipeline reading its spool back, the readers of other tools' files) goes through these three
functions.

The box rule (:func:`mask_bbox`): the tight ``[x, y, w, h]`` in pixels, COCO convention
(0-based, ``x``/``y`` the top-left pixel, ``w``/``h`` counted in pixels), and ``[0, 0, 0, 0]``
for an empty mask, as pycocotools' ``toBbox`` gives and ``tracks.json`` stores for an object
that is not visible. A format that has no box for an empty mask (MOT, CVAT, YouTube-VIS) checks
:func:`has_pixels` itself instead of reading meaning into the zeros.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from configs.errors import InputError

EMPTY_BBOX = (0, 0, 0, 0)


def check_mask(mask: np.ndarray) -> np.ndarray:
    """``mask`` itself if it is an (H, W) bool array; TypeError otherwise."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.ndim != 2:
        shape = getattr(mask, "shape", None)
        raise TypeError(f"mask must be a 2-D bool array, got {type(mask).__name__} {shape}")
    return mask


def has_pixels(mask: np.ndarray) -> bool:
    """Whether an (H, W) bool mask has any pixel set (an empty one has no box)."""
    return bool(check_mask(mask).any())


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) bool -> COCO compressed RLE ``{"size": [H, W], "counts": str}``."""
    encoded = mask_utils.encode(np.asfortranarray(check_mask(mask), dtype=np.uint8))
    return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """COCO RLE (compressed str/bytes counts, or uncompressed list counts) -> (H, W) bool.

    A malformed RLE (missing keys, wrong types, counts that do not decode) raises a one-line
    :class:`InputError` ``invalid COCO RLE mask: ...``.
    """
    try:
        return _decode(rle)
    except (KeyError, TypeError, ValueError, UnicodeEncodeError) as error:
        raise InputError(f"invalid COCO RLE mask: {error}") from None


def _decode(rle: dict[str, Any]) -> np.ndarray:
    height, width = (int(s) for s in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        coco = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    else:
        raw = counts.encode("ascii") if isinstance(counts, str) else counts
        coco = {"size": [height, width], "counts": raw}
    with warnings.catch_warnings():  # pycocotools' own numpy-2 notice, raised on every decode
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        decoded = mask_utils.decode(coco)
    return np.ascontiguousarray(decoded, dtype=bool)


def mask_bbox(mask: np.ndarray) -> list[int]:
    """(H, W) bool -> tight box ``[x, y, w, h]`` in pixels (COCO); empty -> ``[0, 0, 0, 0]``."""
    columns = np.flatnonzero(check_mask(mask).any(axis=0))
    if columns.size == 0:
        return list(EMPTY_BBOX)
    rows = np.flatnonzero(mask.any(axis=1))
    x, y = int(columns[0]), int(rows[0])
    return [x, y, int(columns[-1]) - x + 1, int(rows[-1]) - y + 1]
