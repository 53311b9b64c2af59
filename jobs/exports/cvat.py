"""CVAT for video 1.1 export: an ``annotations.xml`` of mask tracks.

A ``<mask>`` carries CVAT's own run-length encoding of the mask's tight box: ``left``/``top``
place the box, ``width``/``height`` size it, and ``rle`` lists run lengths over the box pixels
in row-major order, alternating background and foreground and starting with background (a
leading 0 when the first pixel is foreground), written ``"a, b, c"`` as CVAT writes it.

Two layouts (:class:`CvatLayout`):

* ``SHAPE_TRACKS`` (default): one track per visible object per frame, holding the mask at that
  frame and an ``outside="1"`` copy on the next frame. This is how CVAT itself exports mask
  shapes in the video format, and the only layout CVAT imports without loss: its importer turns
  a mask track into a single shape built from the track's first mask.
* ``OBJECT_TRACKS``: one track per object with a ``keyframe="1"`` mask on every visible frame
  and an ``outside="1"`` keyframe (repeating the last mask, as CVAT does) on each frame where
  the object disappears. Keeps object identity for other readers; CVAT keeps only its first mask.

Track ids count from 0 in writing order; every shape has ``occluded="0"`` and ``z_order="0"``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import XMLGenerator

import numpy as np

from jobs.exports import (
    DEFAULT_LABEL,
    FrameMasks,
    check_frame,
    label_for,
    video_length,
)
from jobs.mask_codec import has_pixels, mask_bbox
from jobs.mask_io import davis_palette
from jobs.media import VideoInfo


class CvatLayout(enum.Enum):
    SHAPE_TRACKS = "shape-tracks"
    OBJECT_TRACKS = "object-tracks"


@dataclass(frozen=True)
class CvatMask:
    """One mask in CVAT's encoding: run lengths over the box ``left, top, width, height``."""

    rle: tuple[int, ...]
    left: int
    top: int
    width: int
    height: int


_Shape = tuple[int, CvatMask, bool]  # (frame, mask, outside)


def encode_cvat_mask(mask: np.ndarray) -> CvatMask | None:
    """CVAT encoding of a bool (H, W) mask; None if the mask is empty (CVAT has no empty mask)."""
    mask = np.asarray(mask, dtype=bool)
    if not has_pixels(mask):
        return None
    left, top, width, height = mask_bbox(mask)
    crop = mask[top : top + height, left : left + width].ravel()
    changes = np.flatnonzero(crop[1:] != crop[:-1]) + 1
    runs = np.diff(np.concatenate(([0], changes, [crop.size]))).tolist()
    if crop[0]:
        runs.insert(0, 0)
    return CvatMask(tuple(int(r) for r in runs), left, top, width, height)


class _Xml:
    """Indented XML written with the standard library's SAX generator (as CVAT writes it)."""

    def __init__(self, out: BinaryIO) -> None:
        self._gen = XMLGenerator(out, "utf-8")
        self._level = 0

    def open(self, tag: str, attrs: Mapping[str, str] | None = None) -> None:
        self._indent()
        self._gen.startElement(tag, dict(attrs or {}))
        self._level += 1

    def close(self, tag: str) -> None:
        self._level -= 1
        self._indent()
        self._gen.endElement(tag)

    def leaf(self, tag: str, text: str = "", attrs: Mapping[str, str] | None = None) -> None:
        self._indent()
        self._gen.startElement(tag, dict(attrs or {}))
        self._gen.characters(text)
        self._gen.endElement(tag)

    def start_document(self) -> None:
        self._gen.startDocument()

    def end_document(self) -> None:
        self._gen.ignorableWhitespace("\n")
        self._gen.endDocument()

    def _indent(self) -> None:
        self._gen.ignorableWhitespace("\n" + "  " * self._level)


def _label_names(labels: Mapping[int, str] | None) -> list[str]:
    names = list(dict.fromkeys((labels or {}).values()))
    return names if DEFAULT_LABEL in names else [*names, DEFAULT_LABEL]


def _write_meta(xml: _Xml, video: VideoInfo, labels: list[str], stamp: str) -> None:
    xml.open("meta")
    xml.open("task")
    for tag, text in (
        ("id", "0"),
        ("name", video.name),
        ("size", str(video.num_frames)),
        ("mode", "interpolation"),
        ("overlap", "0"),
        ("bugtracker", ""),
        ("created", stamp),
        ("updated", stamp),
        ("subset", "default"),
        ("start_frame", "0"),
        ("stop_frame", str(video.num_frames - 1)),
        ("frame_filter", ""),
    ):
        xml.leaf(tag, text)
    _write_labels(xml, labels)
    xml.open("original_size")
    xml.leaf("width", str(video.width))
    xml.leaf("height", str(video.height))
    xml.close("original_size")
    xml.close("task")
    xml.leaf("dumped", stamp)
    xml.close("meta")


def _write_labels(xml: _Xml, labels: list[str]) -> None:
    palette = davis_palette()
    xml.open("labels")
    for index, name in enumerate(labels):
        red, green, blue = (int(v) for v in palette[(index % 254) + 1])
        xml.open("label")
        xml.leaf("name", name)
        xml.leaf("color", f"#{red:02x}{green:02x}{blue:02x}")
        xml.leaf("type", "mask")
        xml.leaf("attributes")
        xml.close("label")
    xml.close("labels")


def _write_mask(xml: _Xml, frame: int, mask: CvatMask, outside: bool) -> None:
    xml.leaf(
        "mask",
        attrs={
            "frame": str(frame),
            "keyframe": "1",
            "outside": "1" if outside else "0",
            "occluded": "0",
            "rle": ", ".join(str(r) for r in mask.rle),
            "left": str(mask.left),
            "top": str(mask.top),
            "width": str(mask.width),
            "height": str(mask.height),
            "z_order": "0",
        },
    )


class _TrackWriter:
    """Writes ``<track>`` elements with consecutive ids."""

    def __init__(self, xml: _Xml, labels: Mapping[int, str] | None) -> None:
        self._xml = xml
        self._labels = labels
        self.count = 0

    def write(self, obj_id: int, shapes: Iterable[_Shape]) -> None:
        attrs = {"id": str(self.count), "label": label_for(self._labels, obj_id), "source": "auto"}
        self._xml.open("track", attrs)
        for frame, mask, outside in shapes:
            _write_mask(self._xml, frame, mask, outside)
        self._xml.close("track")
        self.count += 1


def _encoded(video: VideoInfo, frames: Iterable[FrameMasks]) -> Iterator[tuple[int, int, CvatMask]]:
    """``(frame, object id, mask)`` of every visible object, frames checked and in order."""
    previous = -1
    for item in frames:
        check_frame(item, video, previous)
        previous = item.frame
        for obj_id, mask in item.visible().items():
            encoded = encode_cvat_mask(mask)
            if encoded is not None:
                yield item.frame, obj_id, encoded


def _shape_tracks(tracks: _TrackWriter, video: VideoInfo, frames: Iterable[FrameMasks]) -> None:
    for frame, obj_id, encoded in _encoded(video, frames):
        shapes = [(frame, encoded, False)]
        if frame + 1 < video_length(video):
            shapes.append((frame + 1, encoded, True))
        tracks.write(obj_id, shapes)


def _object_tracks(tracks: _TrackWriter, video: VideoInfo, frames: Iterable[FrameMasks]) -> None:
    visible: dict[int, dict[int, CvatMask]] = {}
    for frame, obj_id, encoded in _encoded(video, frames):
        visible.setdefault(obj_id, {})[frame] = encoded
    for obj_id, by_frame in sorted(visible.items()):
        tracks.write(obj_id, _keyframes(by_frame, video_length(video)))


def _keyframes(by_frame: Mapping[int, CvatMask], num_frames: int) -> list[_Shape]:
    """Visible masks, plus an outside copy of the last mask where the object disappears."""
    shapes: list[_Shape] = []
    for frame in sorted(by_frame):
        if shapes and shapes[-1][0] < frame - 1:
            shapes.append((shapes[-1][0] + 1, shapes[-1][1], True))
        shapes.append((frame, by_frame[frame], False))
    if shapes and shapes[-1][0] + 1 < num_frames:
        shapes.append((shapes[-1][0] + 1, shapes[-1][1], True))
    return shapes


def write_cvat_video(
    path: Path,
    video: VideoInfo,
    frames: Iterable[FrameMasks],
    labels: Mapping[int, str] | None = None,
    layout: CvatLayout = CvatLayout.SHAPE_TRACKS,
    dumped_at: datetime | None = None,
) -> int:
    """Write a CVAT for video 1.1 ``annotations.xml``; returns the number of tracks.

    Args:
        path: the XML file to write.
        video: size, length and name of the video (the task's name).
        frames: per-frame masks in increasing frame order.
        labels: label name per object id; objects not listed are ``"object"``. The meta data
            declares these names plus ``"object"``, each of type ``mask``.
        layout: see the module docstring.
        dumped_at: timestamp written to the meta data (default: now, UTC).
    """
    video_length(video)  # a video of unknown length is refused before the file is opened
    stamp = (dumped_at or datetime.now(timezone.utc)).isoformat()
    with Path(path).open("wb") as out:
        xml = _Xml(out)
        xml.start_document()
        xml.open("annotations")
        xml.leaf("version", "1.1")
        _write_meta(xml, video, _label_names(labels), stamp)
        tracks = _TrackWriter(xml, labels)
        if layout is CvatLayout.SHAPE_TRACKS:
            _shape_tracks(tracks, video, frames)
        else:
            _object_tracks(tracks, video, frames)
        xml.close("annotations")
        xml.end_document()
    return tracks.count
