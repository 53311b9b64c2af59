"""Where each video's prompts come from: a prompts file, first-frame masks, or ``--auto``.

Every source answers ``prompts_for(video)`` (raising ``InputError`` for that video only) and
``unknown_names(videos)``: names it refers to that no input has, each reported in the summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from configs.errors import InputError
from jobs.mask_io import list_mask_pngs, read_mask_png
from jobs.prompts import (
    Prompt,
    merge_prompts,
    prompts_from_json,
    read_prompt_document,
)
from worker.runtimes.batch.inputs import VideoInput


class PromptSource(Protocol):
    def prompts_for(self, video: VideoInput) -> list[Prompt]: ...

    def unknown_names(self, videos: Sequence[VideoInput]) -> list[str]: ...


@dataclass(frozen=True)
class PromptsFile:
    """``{video name: [prompt, ...] | {"prompts": [...]}}`` in JSON or YAML.

    Each list is the core's prompt list (``{"frame", "object", "points"/"labels" | "box" |
    "mask"}``); mask paths are relative to the file. A key is a video's name (``bear``) or its
    file name (``bear.mp4``). Entries are validated when their video runs.
    """

    path: Path
    entries: Mapping[str, object]

    @classmethod
    def load(cls, path: Path) -> PromptsFile:
        raw = _read_document(path)
        if not isinstance(raw, dict) or not all(isinstance(key, str) for key in raw):
            raise InputError(
                f"prompts file {path} must map video names to prompt lists "
                '(e.g. {"bear": [{"object": 1, "points": [[100, 200]]}]})'
            )
        return cls(Path(path), raw)

    def prompts_for(self, video: VideoInput) -> list[Prompt]:
        key = next((k for k in _keys(video) if k in self.entries), None)
        if key is None:
            raise InputError(f"{self.path} has no prompts for {video.name!r}")
        source = f"prompts for {key!r} in {self.path}"
        return merge_prompts(prompts_from_json(self.entries[key], self.path.parent, source))

    def unknown_names(self, videos: Sequence[VideoInput]) -> list[str]:
        known = {key for video in videos for key in _keys(video)}
        return [name for name in self.entries if name not in known]


def _keys(video: VideoInput) -> tuple[str, str]:
    return (video.name, video.source.name)


def _read_document(path: Path) -> object:
    return read_prompt_document(path)  # the core's reader: size, encoding, depth, YAML


@dataclass(frozen=True)
class FirstFrameMasks:
    """The semi-supervised VOS protocol: one mask PNG per video in a folder.

    For video ``bear`` the mask is ``DIR/bear.png`` (frame 0) or the first PNG of ``DIR/bear/``
    (a DAVIS ``Annotations`` root; ``00005.png`` prompts frame 5). Indexed or greyscale label
    maps give one object per id; a 0/255 mask is object 1.
    """

    folder: Path

    def __post_init__(self) -> None:
        if not self.folder.is_dir():
            raise InputError(f"mask folder {self.folder} is not a folder")

    def prompts_for(self, video: VideoInput) -> list[Prompt]:
        frame, path = self._first_mask(video)
        masks = read_mask_png(path)
        if not masks:
            raise InputError(f"first-frame mask {path} holds no object")
        return [Prompt(obj_id, frame, mask=mask) for obj_id, mask in sorted(masks.items())]

    def unknown_names(self, videos: Sequence[VideoInput]) -> list[str]:
        return []  # a mask folder may hold masks of other videos (a whole DAVIS split)

    def _first_mask(self, video: VideoInput) -> tuple[int, Path]:
        single = self.folder / f"{video.name}.png"
        if single.is_file():
            return 0, single
        per_frame = self.folder / video.name
        if per_frame.is_dir() and any(p.suffix.lower() == ".png" for p in per_frame.iterdir()):
            return list_mask_pngs(per_frame)[0]
        raise InputError(
            f"no first-frame mask for {video.name!r}: expected {single} or {per_frame}/"
        )
