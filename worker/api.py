"""streamseg from Python: open a model, give prompts, feed frames, get per-object masks.

    from worker.api import Segmenter

    with Segmenter("sam2.1-tiny") as segmenter:        # or "lite", or checkpoint=PATH
        segmenter.add_point(1, (320, 180))              # object 1, a positive click on frame 0
        segmenter.add_box(2, (10, 20, 200, 240))        # object 2: x0, y0, x1, y1
        for frame in segmenter.track("clip.mp4"):       # a path, URL, image folder, or frames
            for obj in frame.objects.values():
                print(frame.frame_idx, obj.obj_id, obj.score, obj.box, obj.mask.sum())

``track`` takes a path (decoded frame by frame, as the command line does) or any iterable of
(H, W, 3) uint8 RGB arrays, and yields one ``FrameResult`` per frame as it is computed (the
type every engine returns, ``worker.engines.contract``): memory stays bounded however long
the input. Each ``track`` call starts a new video with all
prompts given so far (their frame numbers count from that video's first frame). The model is
loaded once per process and shared by every ``Segmenter`` asking for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path

import numpy as np

from configs.errors import InputError
from configs.models import DEFAULT_PRECISION
from configs.settings import TrackerSettings
from jobs.media import ModelInfo, VideoInfo
from jobs.prompts import Prompt, check_prompt_frames, validate_prompts
from worker.engines.contract import FrameResult
from worker.engines.registry import AUTO, load_engine
from worker.video.source import open_video

_ITERATOR_FPS = 30.0  # frames handed over as arrays carry no rate; it only labels the video


class Segmenter:
    """A loaded model and the prompts to track with it; a context manager.

    ``model``: a SAM 2 registry name (``sam2.1-tiny`` ... ``sam2.1-large``), ``lite``, or
    ``auto`` (SAM 2 when its checkpoint is at hand, else lite); ``checkpoint``: a local SAM 2
    checkpoint file; ``device``: ``cpu``, ``cuda``, ``cuda:N`` (default: CUDA if present);
    ``precision``: ``auto``, ``fp32`` (exactly the official predictor's float32 results) or
    ``bf16``; ``image_size``: the model's input size (default: its native size).
    Bad arguments raise ``configs.errors.InputError`` / ``ModelLoadError`` with one line.
    """

    def __init__(
        self,
        model: str = AUTO,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        device: str | None = None,
        precision: str = DEFAULT_PRECISION,
        image_size: int | None = None,
    ) -> None:
        settings = TrackerSettings(
            model=model,
            checkpoint=Path(checkpoint) if checkpoint is not None else None,
            image_size=image_size,
            device=device,
            precision=precision,
        )
        self._engine = load_engine(settings, show_progress=False)
        self._prompts: list[Prompt] = []
        self._closed = False

    @property
    def model(self) -> ModelInfo:
        """What the masks come from (the ``model`` block ``tracks.json`` would get)."""
        return self._engine.model

    def add_prompt(self, prompt: Prompt) -> None:
        """Any prompt the command line takes (points, box or mask for one object and frame)."""
        self._check_open()
        self._prompts.append(prompt)

    def add_point(
        self, obj_id: int, xy: tuple[float, float], frame: int = 0, positive: bool = True
    ) -> None:
        """One click at pixel ``xy`` = (x, y); ``positive=False``: "not this object"."""
        self.add_prompt(Prompt(obj_id, frame, points=(tuple(xy),), labels=(int(positive),)))

    def add_box(self, obj_id: int, box: tuple[float, float, float, float], frame: int = 0) -> None:
        """A box ``(x0, y0, x1, y1)`` in pixels around the object."""
        self.add_prompt(Prompt(obj_id, frame, box=tuple(box)))

    def add_mask(self, obj_id: int, mask: np.ndarray, frame: int = 0) -> None:
        """A (H, W) bool mask of the object at the frame's resolution."""
        self.add_prompt(Prompt(obj_id, frame, mask=np.asarray(mask, dtype=bool)))

    def track(self, frames: str | os.PathLike[str] | Iterable[np.ndarray]) -> Iterator[FrameResult]:
        """Track the prompted objects through ``frames`` (a source path/URL or RGB arrays)."""
        self._check_open()
        if not self._prompts:
            raise InputError("nothing to track: add a prompt first")
        with ExitStack() as stack:
            if isinstance(frames, (str, os.PathLike)):
                source = stack.enter_context(open_video(frames))
                yield from self._track_arrays(source.info, (f.rgb for f in source))
            else:
                yield from self._track_arrays(None, iter(frames))

    def close(self) -> None:
        """Forget the prompts; the model stays in the per-process cache for later use."""
        self._prompts.clear()
        self._closed = True

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise InputError("this Segmenter is closed")

    def _track_arrays(
        self, info: VideoInfo | None, rgbs: Iterator[np.ndarray]
    ) -> Iterator[FrameResult]:
        tracker = None
        for index, rgb in enumerate(rgbs):
            rgb = _checked_frame(rgb, index, info)
            if tracker is None:
                info = info or _array_info(rgb)
                validate_prompts(self._prompts, info.width, info.height)
                check_prompt_frames(self._prompts, info.num_frames, None)
                tracker = self._engine.make_tracker(info)
                for prompt in self._prompts:
                    tracker.add_prompt(prompt)
            yield tracker.step(rgb)


def _checked_frame(rgb: np.ndarray, index: int, info: VideoInfo | None) -> np.ndarray:
    """(H, W, 3) uint8, the same size as the first frame; one-line ``InputError`` otherwise."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputError(
            f"frame {index}: expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}"
        )
    if info is not None and rgb.shape[:2] != (info.height, info.width):
        size, video = f"{rgb.shape[1]}x{rgb.shape[0]}", f"{info.width}x{info.height}"
        raise InputError(f"frame {index} is {size}, the video is {video}")
    return rgb


def _array_info(first: np.ndarray) -> VideoInfo:
    height, width = first.shape[:2]
    return VideoInfo(width, height, _ITERATOR_FPS, None, Fraction(1, 1000), 0, "<frames>")
