"""What is known about a video and one decoded frame: the types every layer above passes around.

Decoding lives in ``worker.video.source``; the overlay writer, tracks.json and the exporters read
these types, so they sit in ``jobs`` (below ``worker``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import PurePath
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: --help and submit load no numpy
    import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video: the one video-metadata type of every layer.

    A decoded source, the ``"video"`` block of ``tracks.json`` (written and read by
    ``jobs.tracks_json``) and the video an exporter describes are all this type.

    ``width``/``height``: display size in pixels (after rotation). ``fps``: the stream's average
    frame rate (variable-rate videos: frames / duration). ``num_frames``: the frame count, or None
    when it is not known (a container that does not say, a live session still running).
    ``time_base``: unit of :attr:`Frame.pts` in seconds (None: no timestamps). ``rotation``:
    clockwise degrees (0, 90, 180, 270) applied to decoded frames, as the legacy ``rotate`` tag
    counts them; ``mirrored``: frames are also flipped left-right (before the rotation).
    ``source``: the path or URL as given; for a ``tracks.json`` read back, the folder holding it.
    """

    width: int
    height: int
    fps: float
    num_frames: int | None = None
    time_base: Fraction | None = None
    rotation: int = 0
    source: str = ""
    mirrored: bool = False

    @property
    def name(self) -> str:
        """The video's name in exports (a CVAT task, YouTube-VIS file names): the last part of
        :attr:`source` (a sequence folder's name, a file's name); ``""`` without a source."""
        return PurePath(self.source).name


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame.

    ``index``: 0-based position in the stream. ``rgb``: (H, W, 3) uint8, display orientation.
    ``pts``: presentation timestamp in ``VideoInfo.time_base`` units (None if the container has
    none). ``time``: presentation time in seconds (``pts * time_base``, else ``index / fps``).
    """

    index: int
    rgb: np.ndarray
    pts: int | None
    time: float


@dataclass(frozen=True)
class ModelInfo:
    """What made the masks: the ``"model"`` block of ``tracks.json``.

    ``name``: the model's registry name (``sam2.1-tiny``, ``lite``); ``image_size``: the
    processing size in pixels; ``device``: where it ran (``cpu``, ``cuda:0``); ``checkpoint``:
    the checkpoint's file name (SAM 2); ``weights``: where built-in weights come from (lite).
    A field that is None is left out of the file.
    """

    name: str
    image_size: int | None = None
    device: str | None = None
    checkpoint: str | None = None
    weights: str | None = None

    def to_json(self) -> dict[str, str | int]:
        """The block as JSON values, without the fields that are None."""
        fields = {
            "name": self.name,
            "checkpoint": self.checkpoint,
            "weights": self.weights,
            "image_size": self.image_size,
            "device": self.device,
        }
        return {key: value for key, value in fields.items() if value is not None}

    @classmethod
    def from_json(cls, block: dict) -> ModelInfo:
        """The block of a file already checked by ``jobs.tracks_json``: fields of the wrong
        type or unknown keys (other writers') are ignored, a missing name reads as ``""``."""

        def text(key: str) -> str | None:
            value = block.get(key)
            return value if isinstance(value, str) else None

        size = block.get("image_size")
        size = size if isinstance(size, int) and not isinstance(size, bool) else None
        return cls(
            name=text("name") or "",
            image_size=size,
            device=text("device"),
            checkpoint=text("checkpoint"),
            weights=text("weights"),
        )
