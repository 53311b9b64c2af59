"""The annotation-tool exports of one video, made from its ``tracks.json``.

Layout of a video's output folder (``--export`` chooses; ``tracks.json`` is always written, as
it is the source of every other export and what ``streamseg eval`` reads)::

    tracks.json       the core's result         overlay.mp4       masks drawn on the video
    davis/00000.png   DAVIS indexed PNGs        ytvis.json        YouTube-VIS JSON
    annotations.xml   CVAT for video 1.1        mot.txt           MOTChallenge text
"""

from __future__ import annotations

import enum
import math
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from configs.errors import InputError
from jobs.exports import FrameMasks
from jobs.exports.cvat import write_cvat_video
from jobs.exports.davis_png import frame_png_name, write_davis_pngs
from jobs.exports.mot import write_mot
from jobs.exports.ytvis import write_ytvis
from jobs.mask_io import check_png_ids
from jobs.output_names import CVAT_FILE, DAVIS_DIR, MOT_FILE, TRACKS_FILE, YTVIS_FILE
from jobs.tracks import Tracks, read_tracks


class ExportKind(enum.Enum):
    TRACKS = "tracks"
    OVERLAY = "overlay"
    DAVIS = "davis"
    YTVIS = "ytvis"
    CVAT = "cvat"
    MOT = "mot"


DEFAULT_EXPORTS = (ExportKind.TRACKS, ExportKind.DAVIS)
_DERIVED = (ExportKind.DAVIS, ExportKind.YTVIS, ExportKind.CVAT, ExportKind.MOT)


def parse_exports(values: Iterable[str]) -> tuple[ExportKind, ...]:
    """``--export`` values (repeatable, comma-separated, or ``all``) -> sorted kinds."""
    names = [part.strip().lower() for value in values for part in value.split(",")]
    names = [name for name in names if name]
    if not names:
        return DEFAULT_EXPORTS
    kinds = {ExportKind.TRACKS}
    for name in names:
        if name == "all":
            kinds.update(ExportKind)
            continue
        try:
            kinds.add(ExportKind(name))
        except ValueError:
            choices = ", ".join(kind.value for kind in ExportKind)
            raise InputError(f"unknown export {name!r}: choose from {choices}, all") from None
    return tuple(kind for kind in ExportKind if kind in kinds)


def check_object_ids(kinds: Iterable[ExportKind], object_ids: Iterable[int]) -> None:
    """Raise :class:`InputError` if a wanted export cannot hold these ids (before tracking)."""
    if ExportKind.DAVIS in set(kinds):
        check_png_ids(object_ids)


def write_exports(folder: Path, kinds: Iterable[ExportKind]) -> list[Path]:
    """Write the derived exports of ``folder/tracks.json``; returns the files written."""
    wanted = [kind for kind in _DERIVED if kind in set(kinds)]
    if not wanted:
        return []
    tracks = read_tracks(Path(folder) / TRACKS_FILE, finished=True)
    check_object_ids(wanted, [track.id for track in tracks.objects])  # before anything is written
    written: list[Path] = []
    for kind in wanted:
        try:
            written += _write_one(Path(folder), kind, tracks)
        except BaseException:
            _remove_export(Path(folder), kind)  # no half-written export is left behind
            raise
    return written


def _remove_export(folder: Path, kind: ExportKind) -> None:
    if kind is ExportKind.DAVIS:
        shutil.rmtree(folder / DAVIS_DIR, ignore_errors=True)
        return
    name = {ExportKind.YTVIS: YTVIS_FILE, ExportKind.CVAT: CVAT_FILE, ExportKind.MOT: MOT_FILE}
    if (folder / name[kind]).is_file():
        (folder / name[kind]).unlink()


def _write_one(folder: Path, kind: ExportKind, tracks: Tracks) -> list[Path]:
    video = tracks.video
    if kind is ExportKind.DAVIS:
        out_dir = folder / DAVIS_DIR
        shutil.rmtree(out_dir, ignore_errors=True)  # a longer earlier run's frames must go
        # score logits, not confidences: overlaps go by the values eval ranks (a sigmoid
        # rounds large logits to 1.0 and would turn their order into a tie)
        count = write_davis_pngs(out_dir, video, tracks.frames())
        return [out_dir / frame_png_name(frame) for frame in range(count)]
    if kind is ExportKind.YTVIS:
        write_ytvis(folder / YTVIS_FILE, video, confidence_frames(tracks))
        return [folder / YTVIS_FILE]
    if kind is ExportKind.CVAT:
        write_cvat_video(folder / CVAT_FILE, video, confidence_frames(tracks))
        return [folder / CVAT_FILE]
    write_mot(folder / MOT_FILE, video, confidence_frames(tracks))
    return [folder / MOT_FILE]


def confidence_frames(tracks: Tracks) -> Iterator[FrameMasks]:
    """The frames of ``tracks`` with score logits turned into [0, 1] confidences."""
    for item in tracks.frames():
        scores = {obj_id: _sigmoid(score) for obj_id, score in item.scores.items()}
        yield FrameMasks(item.frame, item.masks, scores)


def _sigmoid(logit: float) -> float:
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    exp = math.exp(logit)
    return exp / (1.0 + exp)
