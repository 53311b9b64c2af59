"""The ``tracks.json`` result file, written with constant memory and readable back.

Format (objects sorted by id, each object's frames sorted by frame index)::

    {"video": {"width": W, "height": H, "fps": F, "num_frames": N},
     "model": {"name": ..., "image_size": ..., "device": ..., ...} (jobs.media.ModelInfo),
     "objects": [{"id": 1, "frames": [
         {"frame": 0, "rle": {"size": [H, W], "counts": "..."}, "bbox": [x, y, w, h],
          "score": 3.25, "visible": true}, ...]}, ...]}

One entry per object per processed frame from the object's first prompt on. ``rle`` is COCO
compressed RLE at source resolution (``pycocotools.mask.decode`` reads it); ``score`` is the
object score logit; an absent object has ``"visible": false``, an empty mask and bbox
``[0, 0, 0, 0]``.

:class:`TracksWriter` appends each record to a spool file next to the output as it comes (one
line per record, frame-major; nothing is kept in RAM) and at :meth:`TracksWriter.finish`
regroups the spool per object on disk and streams the result into ``tracks.json`` atomically.
A crashed job leaves its spool behind; :meth:`TracksWriter.resume` reopens it cut back to a
frame so the job continues without duplicate or missing records.

:func:`read_tracks` is the one reader: it checks the file through :mod:`jobs.tracks_json` and
gives :class:`Tracks`, whose masks stay encoded until a frame is asked for.
"""

from __future__ import annotations

import json
import math
import operator
import os
import tempfile
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from configs.errors import InputError
from jobs.atomic_files import atomic_writer
from jobs.exports import FrameMasks
from jobs.mask_codec import check_mask, mask_bbox, mask_to_rle, rle_to_mask
from jobs.media import ModelInfo, VideoInfo
from jobs.output_names import SPOOL_SUFFIX, TRACKS_SCRATCH_PREFIX
from jobs.tracks_json import (
    FrameJson,
    check_video_meta,
    load_tracks_document,
    video_block,
    video_from_block,
)

_SPOOL_MAGIC = "streamseg-tracks-spool"
_SPLIT_FILES_AT_ONCE = 64


# --- data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackFrame:
    """One object on one frame: COCO RLE, ``[x, y, w, h]`` box, score logit, visibility."""

    frame: int
    rle: dict[str, Any]
    bbox: list[int]
    score: float
    visible: bool

    def mask(self) -> np.ndarray:
        """(H, W) bool."""
        return rle_to_mask(self.rle)


@dataclass(frozen=True)
class ObjectTrack:
    """One object's entries, sorted by frame."""

    id: int
    frames: list[TrackFrame]

    def at(self, frame: int) -> TrackFrame | None:
        """The entry for ``frame``, or None when the object has none there."""
        position = bisect_left(self.frames, frame, key=lambda entry: entry.frame)
        if position < len(self.frames) and self.frames[position].frame == frame:
            return self.frames[position]
        return None


@dataclass(frozen=True)
class Tracks:
    """A whole ``tracks.json`` in memory (for readers; the writer never holds one)."""

    video: VideoInfo
    model: ModelInfo
    objects: list[ObjectTrack] = field(default_factory=list)

    def frame_masks(self, frame: int) -> FrameMasks:
        """The visible objects of one frame, decoded: bool (H, W) masks and their score logits.

        A mask that does not decode raises :class:`InputError` naming its object and frame.
        """
        masks, scores = {}, {}
        for track in self.objects:
            entry = track.at(frame)
            if entry is None or not entry.visible:
                continue
            try:
                masks[track.id] = entry.mask()
            except InputError as error:
                raise InputError(f"object {track.id} frame {frame}: {error}") from None
            scores[track.id] = entry.score
        return FrameMasks(frame=frame, masks=masks, scores=scores)

    def frames(self) -> Iterator[FrameMasks]:
        """:meth:`frame_masks` of every frame ``0..num_frames-1`` in order, one at a time.

        Needs a finished file (``read_tracks(path, finished=True)``).
        """
        if self.video.num_frames is None:
            raise InputError("the tracks' frame count is not known (video.num_frames unset)")
        for frame in range(self.video.num_frames):
            yield self.frame_masks(frame)

    def masks_at(self, frame: int) -> dict[int, np.ndarray]:
        """``{object id: (H, W) bool}`` for every object with an entry at ``frame``.

        An object marked not visible there maps to an all-False mask.
        """
        masks = {}
        for track in self.objects:
            entry = track.at(frame)
            if entry is not None:
                masks[track.id] = entry.mask()
        return masks


def read_tracks(path: str | os.PathLike[str], *, finished: bool = False) -> Tracks:
    """Load a ``tracks.json``: the one reader (eval, exports, demo, batch runner, tests).

    A missing or malformed file raises a one-line InputError; so does, with ``finished``, a
    file whose ``video.num_frames`` is not set (what an export or a score needs).

    Checked by :func:`jobs.tracks_json.load_tracks_document` (types, sizes, frame order). An
    entry not visible reads as an empty mask and box ``[0, 0, 0, 0]``. The video's ``source``
    is the folder holding the file, so its ``name`` is that folder's (the sequence's) name.
    """
    document = load_tracks_document(path)
    if finished and document.video.num_frames is None:
        raise InputError(f"not a valid tracks.json: {path} (video.num_frames is not set)")
    video = video_from_block(document.video, str(Path(path).parent))
    empty = mask_to_rle(np.zeros((video.height, video.width), dtype=bool))
    objects = [
        ObjectTrack(obj.id, [_track_frame(entry, empty) for entry in obj.frames])
        for obj in document.objects
    ]
    return Tracks(video, ModelInfo.from_json(document.model), objects)


def _track_frame(entry: FrameJson, empty: dict[str, Any]) -> TrackFrame:
    rle = empty if entry.rle is None else {"size": list(entry.rle.size), "counts": entry.rle.counts}
    bbox = [0, 0, 0, 0] if entry.bbox is None else list(entry.bbox)
    return TrackFrame(entry.frame, rle, bbox, entry.score, entry.visible)


# --- spool ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpoolState:
    """What a spool holds: ``records`` complete records, ``objects`` distinct ids,
    ``last_frame`` the highest frame with a record (None: empty). Every frame before
    ``complete_before`` has all its records (the last frame may be partial after a crash), so
    :meth:`TracksWriter.resume` accepts any ``upto_frame <= complete_before``."""

    records: int
    objects: int
    last_frame: int | None

    @property
    def complete_before(self) -> int:
        return 0 if self.last_frame is None else self.last_frame


@dataclass(frozen=True)
class SpoolLine:
    frame: int
    obj_id: int
    entry: bytes  # the JSON frame entry, exactly as it goes into tracks.json
    end: int  # byte offset just after this line


def spool_path_for(path: str | os.PathLike[str]) -> Path:
    """Where the spool of the ``tracks.json`` at ``path`` lives."""
    path = Path(path)
    return path.with_name(path.name + SPOOL_SUFFIX)


def _spool_header(video: VideoInfo) -> bytes:
    header = {"spool": _SPOOL_MAGIC, "width": video.width, "height": video.height}
    return (json.dumps(header) + "\n").encode()


def read_spool(spool: Path, video: VideoInfo) -> Iterator[SpoolLine]:
    """Complete, well-formed records in order; stops at a torn or unreadable line."""
    with open(spool, "rb") as handle:
        header = handle.readline()
        if header != _spool_header(video):
            raise ValueError(f"{spool} is not a spool of a {video.width}x{video.height} video")
        offset = len(header)
        for line in handle:
            record = _parse_spool_line(line, offset + len(line))
            if record is None:
                return
            offset = record.end
            yield record


def _parse_spool_line(line: bytes, end: int) -> SpoolLine | None:
    if not line.endswith(b"\n"):
        return None
    try:
        frame, obj_id, entry = line.rstrip(b"\n").split(b" ", 2)
        record = SpoolLine(int(frame), int(obj_id), entry, end)
    except ValueError:
        return None
    well_formed = entry.startswith(b'{"frame": ' + frame + b",") and entry.endswith(b"}")
    return record if well_formed else None


def spool_state(path: str | os.PathLike[str], video: VideoInfo) -> SpoolState | None:
    """State of the spool a crashed job left for ``path``, or None when there is none."""
    spool = spool_path_for(path)
    if not spool.exists():
        return None
    records, ids, last = 0, set(), None
    for line in read_spool(spool, video):
        records, last = records + 1, line.frame
        ids.add(line.obj_id)
    return SpoolState(records, len(ids), last)


# --- writer --------------------------------------------------------------------------------


class TracksWriter:
    """Streams records into a spool, then writes ``tracks.json`` atomically at :meth:`finish`.

    Use as a context manager. Records must come in frame order (any object order within a
    frame, each (frame, object) once). If the block raises, or ends without ``finish()``, no
    ``tracks.json`` is written and the spool is removed, unless ``keep_spool`` is set (then a
    retry can :meth:`resume` it). Starting a new writer on a path discards an old spool.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        video: VideoInfo,
        model: ModelInfo,
        *,
        keep_spool: bool = False,
    ) -> None:
        self._init_state(Path(path), video, model, keep_spool)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spool: IO[bytes] = open(self.spool_path, "wb")
        self._spool.write(_spool_header(video))

    def _init_state(self, path: Path, video: VideoInfo, model: ModelInfo, keep_spool: bool) -> None:
        self.path, self.video, self.model, self.keep_spool = path, video, model, keep_spool
        check_video_meta(video)  # what read_tracks refuses is never written
        self._records, self._ids, self._last_frame = 0, set(), None
        self._current_frame, self._current_ids = 0, set()
        self._finished = False
        self._empty_entry_tail = self._entry_tail(np.zeros((video.height, video.width), bool))

    @property
    def spool_path(self) -> Path:
        return spool_path_for(self.path)

    @classmethod
    def resume(
        cls,
        path: str | os.PathLike[str],
        video: VideoInfo,
        model: ModelInfo,
        upto_frame: int,
        *,
        keep_spool: bool = False,
    ) -> TracksWriter:
        """Reopen the spool a crashed job left, keeping only records of frames < ``upto_frame``.

        The job then continues by adding frames from ``upto_frame`` on. Raises
        FileNotFoundError without a spool, ValueError if it belongs to another video size or
        if ``upto_frame`` is past the frames it holds completely (``complete_before``).
        """
        writer = cls.__new__(cls)
        writer._reopen(Path(path), video, model, operator.index(upto_frame), keep_spool)
        return writer

    def _reopen(
        self, path: Path, video: VideoInfo, model: ModelInfo, upto: int, keep_spool: bool
    ) -> None:
        self._init_state(path, video, model, keep_spool)
        state = spool_state(path, video)
        if state is None:
            raise FileNotFoundError(f"no spool to resume: {self.spool_path}")
        if upto > state.complete_before:
            raise ValueError(
                f"cannot resume at frame {upto}: {self.spool_path} is complete only before "
                f"frame {state.complete_before}"
            )
        cut = len(_spool_header(video))
        for line in read_spool(self.spool_path, video):
            if line.frame >= upto:
                break
            self._records, self._last_frame, cut = self._records + 1, line.frame, line.end
            self._ids.add(line.obj_id)
        self._current_frame = upto
        self._spool = open(self.spool_path, "r+b")
        self._spool.truncate(cut)
        self._spool.seek(cut)

    def state(self) -> SpoolState:
        """Records spooled so far (see :class:`SpoolState`)."""
        return SpoolState(self._records, len(self._ids), self._last_frame)

    def add(self, frame: int, obj_id: int, mask: np.ndarray, score: float, visible: bool) -> None:
        """Spool one object's result on one frame.

        ``mask``: (H, W) bool at source resolution. ``score``: object score logit (finite).
        ``visible=False`` records an empty mask and bbox whatever ``mask`` holds.
        """
        frame, obj_id, score = operator.index(frame), operator.index(obj_id), float(score)
        self._check_record(frame, obj_id, mask, score)
        if frame > self._current_frame:
            self._spool.flush()  # every earlier frame is complete: let it reach the disk
            self._current_frame, self._current_ids = frame, set()
        tail = self._entry_tail(mask) if visible else self._empty_entry_tail
        entry = f'{{"frame": {frame}, {tail}, "score": {round(score, 6)!r}, '
        entry += f'"visible": {"true" if visible else "false"}}}'
        self._spool.write(f"{frame} {obj_id} {entry}\n".encode())
        self._current_ids.add(obj_id)
        self._ids.add(obj_id)
        self._records, self._last_frame = self._records + 1, frame

    def _check_record(self, frame: int, obj_id: int, mask: np.ndarray, score: float) -> None:
        where = f"(frame {frame}, object {obj_id})"
        if self._finished or self._spool.closed:
            raise RuntimeError(f"the writer of {self.path} is closed")
        if frame < 0 or obj_id < 0:
            raise ValueError(f"frame and object id must be >= 0 {where}")
        if frame < self._current_frame:
            raise ValueError(
                f"frames must come in order: {where} after frame {self._current_frame}"
            )
        if frame == self._current_frame and obj_id in self._current_ids:
            raise ValueError(f"object added twice on one frame {where}")
        if not math.isfinite(score):
            raise ValueError(f"score must be finite, got {score} {where}")
        if check_mask(mask).shape != (self.video.height, self.video.width):
            raise ValueError(
                f"mask is {mask.shape[1]}x{mask.shape[0]} but the video is "
                f"{self.video.width}x{self.video.height} {where}"
            )

    @staticmethod
    def _entry_tail(mask: np.ndarray) -> str:
        rle = json.dumps(mask_to_rle(mask), separators=(", ", ": "))
        return f'"rle": {rle}, "bbox": {json.dumps(mask_bbox(mask))}'

    def finish(self, num_frames: int) -> Path:
        """Write ``tracks.json`` (``video.num_frames = num_frames``) atomically; drop the spool."""
        num_frames = operator.index(num_frames)
        if self._finished or self._spool.closed:
            raise RuntimeError(f"the writer of {self.path} is closed")
        if self._last_frame is not None and num_frames <= self._last_frame:
            raise ValueError(f"num_frames={num_frames} but frame {self._last_frame} was added")
        self._spool.close()
        meta = replace(self.video, num_frames=num_frames)
        folder = self.path.parent
        with tempfile.TemporaryDirectory(dir=folder, prefix=TRACKS_SCRATCH_PREFIX) as scratch:
            per_object = _split_per_object(self.spool_path, self.video, sorted(self._ids), scratch)
            _write_atomically(self.path, _document_chunks(meta, self.model, per_object))
        self.spool_path.unlink()
        self._finished = True
        return self.path

    def abort(self) -> None:
        """Give up: close the spool and remove it (unless ``keep_spool``); no tracks.json."""
        if not self._spool.closed:
            self._spool.close()
        if not self._finished and not self.keep_spool:
            self.spool_path.unlink(missing_ok=True)

    def __enter__(self) -> TracksWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._finished:
            self.abort()


# --- assembly ------------------------------------------------------------------------------


def _split_per_object(
    spool: Path, video: VideoInfo, ids: list[int], scratch: str
) -> list[tuple[int, Path]]:
    """Copy each object's entries, in frame order, to its own file under ``scratch``."""
    files = [(obj_id, Path(scratch, f"{obj_id}.jsonl")) for obj_id in ids]
    for start in range(0, len(files), _SPLIT_FILES_AT_ONCE):
        batch = dict(files[start : start + _SPLIT_FILES_AT_ONCE])
        handles = {obj_id: open(path, "wb") for obj_id, path in batch.items()}
        try:
            for line in read_spool(spool, video):
                handle = handles.get(line.obj_id)
                if handle is not None:
                    handle.write(line.entry + b"\n")
        finally:
            for handle in handles.values():
                handle.close()
    return files


def _document_chunks(
    video: VideoInfo, model: ModelInfo, per_object: list[tuple[int, Path]]
) -> Iterator[bytes]:
    """The tracks.json text, piece by piece: one frame entry per line."""
    model_json = json.dumps(model.to_json(), allow_nan=False)
    yield f'{{"video": {json.dumps(video_block(video))},\n "model": {model_json},\n'.encode()
    yield b' "objects": ['
    for position, (obj_id, path) in enumerate(per_object):
        separator = ",\n  " if position else "\n  "
        yield f'{separator}{{"id": {obj_id}, "frames": ['.encode()
        with open(path, "rb") as handle:
            for index, entry in enumerate(handle):
                yield (b",\n   " if index else b"\n   ") + entry.rstrip(b"\n")
        yield b"]}"
    yield b"]}\n"


def _write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Stream ``chunks`` into ``path`` in one visible step, with the umask's file mode."""
    with atomic_writer(path) as handle:
        for chunk in chunks:
            handle.write(chunk)
