"""Finding the videos of a batch: video files, folders of videos, image-sequence folders.

An input path is

* a file: one video (whatever its suffix; decoding problems are that video's failure);
* a folder holding images: one image sequence (DAVIS ``JPEGImages/<seq>``), named after it;
* a folder holding videos and/or image-sequence folders (DAVIS ``JPEGImages``): each of them.

A video is named after its file stem or its folder; names key the prompts file, the mask
folder and the output folders, so two inputs with one name are a problem, as is a missing path.
Problems are returned, not raised, so that the rest of the batch still runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from worker.video.source import IMAGE_SUFFIXES

VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv",
)  # fmt: skip


@dataclass(frozen=True)
class VideoInput:
    """One video of the batch: ``name`` (unique in the batch) and its file or frame folder."""

    name: str
    source: Path

    @property
    def is_image_folder(self) -> bool:
        return self.source.is_dir()


@dataclass(frozen=True)
class InputProblem:
    """An input that cannot be run, reported under ``name`` in the summary."""

    name: str
    message: str


@dataclass(frozen=True)
class Discovery:
    videos: tuple[VideoInput, ...]
    problems: tuple[InputProblem, ...]


def discover_inputs(paths: Iterable[Path]) -> Discovery:
    """Every video under ``paths``, in the order given (folders: sorted by name)."""
    videos: dict[str, VideoInput] = {}
    problems: list[InputProblem] = []
    for path in paths:
        for item in _expand(Path(path)):
            if isinstance(item, InputProblem):
                problems.append(item)
            elif item.name in videos:
                other = videos[item.name].source
                message = f"{item.source} has the same name as {other}; rename one"
                problems.append(InputProblem(item.name, message))
            else:
                videos[item.name] = item
    return Discovery(tuple(videos.values()), tuple(problems))


def _expand(path: Path) -> Iterator[VideoInput | InputProblem]:
    if not path.exists():
        yield InputProblem(_name_of(path), f"no such file or folder: {path}")
    elif path.is_file():
        yield VideoInput(_name_of(path), path)
    elif not path.is_dir():  # a FIFO, socket or device: a batch reads each video twice
        message = f"{path} is not a file or a folder (pipes and devices: use streamseg segment)"
        yield InputProblem(_name_of(path), message)
    elif _has_images(path):
        yield VideoInput(_name_of(path), path)
    else:
        found = list(_folder_videos(path))
        if not found:
            message = f"{path} holds no videos, images or image folders"
            yield InputProblem(_name_of(path), message)
        yield from found


def _folder_videos(folder: Path) -> Iterator[VideoInput]:
    for child in sorted(folder.iterdir()):
        if child.is_file() and child.suffix.lower() in VIDEO_SUFFIXES:
            yield VideoInput(child.stem, child)
        elif child.is_dir() and _has_images(child):
            yield VideoInput(child.name, child)


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir() if p.is_file())


def _name_of(path: Path) -> str:
    path = path if path.name not in ("", ".", "..") else path.resolve()
    is_file = path.is_file() or path.suffix.lower() in VIDEO_SUFFIXES
    return path.stem if is_file else path.name
