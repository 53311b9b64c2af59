"""Reading and writing per-frame object masks as DAVIS-style PNG folders.

PNG masks (one file per frame, ``00000.png``, ``00001.png``, ...) come in two layouts:

* indexed (palette, mode ``P``) or greyscale label maps whose value is the object id, with 0 the
  background and 255 void (dropped, as the official DAVIS loader does);
* binary masks of one object (DAVIS 2016: greyscale 0/255), read as object 1.

Any PIL mode is accepted: ``LA``/``PA`` use their first channel, ``1`` is binary, ``I``/``I;16``
are label maps, and RGB(A) colours are mapped back through the DAVIS palette (black/white only
is binary). Written PNGs are indexed with the standard DAVIS palette.

``tracks.json`` is read by :func:`jobs.tracks.read_tracks`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from configs.errors import InputError
from jobs.exports import FrameMasks, one_label_per_pixel
from jobs.image_files import open_image

VOID_LABEL = 255
MAX_PNG_ID = 254  # indexed PNG object ids: 0 is the background, 255 void
_MAX_BINCOUNT_LABEL = 1 << 16


def davis_palette() -> np.ndarray:
    """The DAVIS (PASCAL VOC) colour map: uint8 (256, 3), index 0 black, 1 (128, 0, 0), ..."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, red, green, blue = index, 0, 0, 0
        for shift in range(7, -1, -1):
            red |= (value & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (red, green, blue)
    return palette


def label_map(image: Image.Image) -> np.ndarray:
    """Object-id map of a mask image: int (H, W), 0 background, ids >= 1, 255 void.

    A greyscale or 1-bit image whose only values are 0 and 255 (or 0 and 1 for mode ``1``)
    is a binary mask of object 1.
    """
    mode = image.mode
    if mode in ("RGB", "RGBA"):
        return _labels_from_colours(np.asarray(image.convert("RGB")))
    if mode not in ("P", "PA", "L", "LA", "La", "1", "I", "I;16", "I;16B", "I;16L"):
        raise InputError(f"unsupported mask image mode {mode!r}")
    values = np.asarray(image.getchannel(0) if mode in ("PA", "LA", "La") else image)
    indexed = mode in ("P", "PA")
    if mode == "1" or (not indexed and set(present_labels(values)) <= {0, 255}):
        return (values > 0).astype(np.uint8)
    return values


def present_labels(labels: np.ndarray) -> list[int]:
    """The distinct values of a non-negative int (H, W) label map, ascending."""
    if labels.size == 0:
        return []
    if labels.min() < 0:
        raise InputError("mask label maps cannot hold negative values")
    if labels.max() > _MAX_BINCOUNT_LABEL:  # a 32-bit label map: counting every value is GBs
        return np.unique(labels).tolist()
    return np.flatnonzero(np.bincount(labels.ravel())).tolist()


def _labels_from_colours(rgb: np.ndarray) -> np.ndarray:
    keys = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    colours = np.unique(keys)
    if set(colours.tolist()) <= {0, 0xFFFFFF}:
        return (keys > 0).astype(np.uint8)
    palette = davis_palette().astype(np.int64)
    palette_keys = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    lookup = {int(key): index for index, key in enumerate(palette_keys)}
    unknown = [hex(int(c)) for c in colours if int(c) not in lookup]
    if unknown:
        raise InputError(f"mask colours {unknown[:3]} are not in the DAVIS palette")
    labels = np.zeros(keys.shape, dtype=np.uint8)
    for colour in colours:
        labels[keys == colour] = lookup[int(colour)]
    return labels


def masks_from_labels(labels: np.ndarray) -> dict[int, np.ndarray]:
    """``{obj_id: bool (H, W) mask}`` of an int (H, W) label map; 0 and void are left out."""
    ids = [v for v in present_labels(labels) if v not in (0, VOID_LABEL)]
    return {obj_id: labels == obj_id for obj_id in ids}


def read_mask_png(path: Path, shape: tuple[int, int] | None = None) -> dict[int, np.ndarray]:
    """The object masks of one PNG file: ``{obj_id: bool (H, W) mask}``.

    ``shape`` (H, W), when given, is the size the image must have: a frame of another size is
    an error even when it holds no object (it would otherwise read as an empty frame).
    """
    try:
        with open_image(path) as image:
            _check_shape(path, (image.height, image.width), shape)
            image.load()
            labels = label_map(image)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        reason = " ".join(str(error).split())
        raise InputError(f"cannot read mask image {path}: {reason}") from None
    return masks_from_labels(labels)


def mask_png_shape(path: Path) -> tuple[int, int]:
    """(H, W) of a mask image, from its header (nothing is decoded)."""
    try:
        with open_image(path) as image:
            return (image.height, image.width)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        reason = " ".join(str(error).split())
        raise InputError(f"cannot read mask image {path}: {reason}") from None


def _check_shape(path: Path, actual: tuple[int, int], wanted: tuple[int, int] | None) -> None:
    if wanted is not None and actual != wanted:
        raise InputError(
            f"mask image {path} is {actual[1]}x{actual[0]}, expected {wanted[1]}x{wanted[0]}"
        )


def list_mask_pngs(folder: Path) -> list[tuple[int, Path]]:
    """``(frame index, path)`` of every PNG in a folder, in frame order.

    Frame indices are the numeric file stems (``00012.png`` is frame 12); if any stem is not a
    number, the sorted position is used instead.
    """
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() == ".png")
    if not paths:
        raise InputError(f"no PNG masks in {folder}")
    if all(p.stem.isdigit() for p in paths):
        return sorted((int(p.stem), p) for p in paths)
    return list(enumerate(paths))


def read_mask_folder(folder: Path) -> Iterator[FrameMasks]:
    """Stream a folder of per-frame PNG masks as :class:`FrameMasks`, one per file."""
    for frame, path in list_mask_pngs(folder):
        yield FrameMasks(frame=frame, masks=read_mask_png(path))


def check_png_ids(ids: Iterable[int]) -> None:
    """Raise :class:`InputError` unless every object id fits an indexed PNG (1..254)."""
    misfits = sorted(obj_id for obj_id in set(ids) if not 1 <= obj_id <= MAX_PNG_ID)
    if misfits:
        raise InputError(
            f"object id {misfits[0]} does not fit an indexed PNG (1..{MAX_PNG_ID}; 0 is the "
            f"background, 255 void)"
        )


def labels_from_masks(
    masks: Mapping[int, np.ndarray],
    shape: tuple[int, int],
    scores: Mapping[int, float] | None = None,
) -> np.ndarray:
    """uint8 (H, W) label map of ``{obj_id: bool (H, W)}``, one label per pixel.

    Where masks overlap, the highest score wins (ties: the lower id), by
    :func:`jobs.exports.one_label_per_pixel`; ``scores`` missing: the lower id wins.
    """
    check_png_ids(masks)
    for obj_id, mask in masks.items():
        if np.shape(mask) != shape:
            raise InputError(f"object {obj_id}: mask shape {np.shape(mask)} is not {shape}")
    labels = np.zeros(shape, dtype=np.uint8)
    for obj_id, mask in one_label_per_pixel(masks, scores).items():
        labels[mask] = obj_id
    return labels


def write_indexed_png(
    path: Path,
    masks: Mapping[int, np.ndarray],
    shape: tuple[int, int],
    scores: Mapping[int, float] | None = None,
) -> None:
    """Write ``{obj_id: bool (H, W)}`` as an indexed PNG with the DAVIS palette (0 = background).

    Args:
        path: the PNG file to write.
        masks: the frame's object masks; ids 1..254.
        shape: (H, W) of the frame, used when ``masks`` is empty.
        scores: per object; where masks overlap the highest score keeps the pixel (ties and
            no scores: the lower id), see :func:`labels_from_masks`.
    """
    image = Image.fromarray(labels_from_masks(masks, shape, scores))
    image.putpalette(davis_palette().tobytes())  # makes the greyscale image indexed
    image.save(path, format="PNG")
