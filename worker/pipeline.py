"""One video through the tracker into tracks.json and overlay.mp4, streaming.

Frames are decoded one at a time, prompts are handed to the tracker on their frame, and each
result goes straight to the writers. Outputs appear only when the whole video succeeded: on any
error (bad video, prompt past the end, cancellation) no tracks.json or overlay.mp4 is left.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from jobs.errors import InputError, StreamsegError
from jobs.overlay import OverlayWriter
from jobs.prompts import Prompt, validate_prompts
from jobs.tracks import TracksWriter, VideoMeta
from worker.tracker import FrameResult
from worker.video_source import Frame, VideoInfo, open_video

TRACKS_FILE = "tracks.json"
OVERLAY_FILE = "overlay.mp4"


class Tracker(Protocol):
    """What the pipeline needs of a tracker (SAM 2's ``StreamingTracker``, ``LiteTracker``)."""

    frame_idx: int

    def add_prompt(self, prompt: Prompt) -> None: ...

    def step(self, rgb: np.ndarray) -> FrameResult: ...


class Cancelled(StreamsegError):
    """The run was asked to stop; nothing it wrote is marked complete."""


@dataclass(frozen=True)
class Progress:
    """``frame``: frames done so far; ``total``: frames in the video if known; ``fps``."""

    frame: int
    total: int | None
    fps: float


@dataclass(frozen=True)
class SegmentRequest:
    source: str
    out_dir: Path
    prompts: Sequence[Prompt]
    write_tracks: bool = True
    write_overlay: bool = True
    max_frames: int | None = None  # stop after this many frames (a preview of long videos)


@dataclass(frozen=True)
class SegmentSummary:
    num_frames: int
    object_ids: list[int]
    seconds: float
    outputs: list[Path] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.num_frames / self.seconds if self.seconds > 0 else 0.0


TrackerFactory = Callable[[VideoInfo], Tracker]


def segment_video(
    request: SegmentRequest,
    make_tracker: TrackerFactory,
    model_meta: dict,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SegmentSummary:
    """Run ``request`` to completion; raises ``StreamsegError`` subclasses on bad input."""
    out_dir = Path(request.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (TRACKS_FILE, OVERLAY_FILE):  # an old result must not pass for this one
        (out_dir / name).unlink(missing_ok=True)
    if not request.prompts:
        raise InputError("no prompts given: add --point, --box, --mask or --prompts")
    with open_video(request.source) as video:
        info = video.info
        validate_prompts(request.prompts, info.width, info.height)
        tracker = make_tracker(info)
        meta = VideoMeta(info.width, info.height, info.fps, info.num_frames)
        with ExitStack() as stack:
            writers = _open_writers(stack, request, out_dir, info, meta, model_meta)
            count, seconds = _run_frames(
                video,
                tracker,
                request.prompts,
                writers,
                on_progress,
                should_stop,
                request.max_frames,
            )
            object_ids = writers.finish(count)
    return SegmentSummary(count, object_ids, seconds, writers.paths)


def _run_frames(
    video, tracker, prompts, writers, on_progress, should_stop, max_frames
) -> tuple[int, float]:
    by_frame: dict[int, list[Prompt]] = defaultdict(list)
    for prompt in prompts:
        by_frame[prompt.frame].append(prompt)
    total = video.info.num_frames
    if max_frames is not None:
        total = min(total, max_frames) if total is not None else max_frames
    start = time.perf_counter()
    count = 0
    for frame in video:
        if max_frames is not None and frame.index >= max_frames:
            break
        if should_stop is not None and should_stop():
            raise Cancelled(f"cancelled at frame {frame.index}")
        for prompt in by_frame.pop(frame.index, []):
            tracker.add_prompt(prompt)
        writers.write(frame, tracker.step(frame.rgb))
        count += 1
        if on_progress is not None:
            elapsed = time.perf_counter() - start
            on_progress(Progress(count, total, count / elapsed if elapsed > 0 else 0.0))
    if by_frame:
        first = min(by_frame)
        raise InputError(f"a prompt is on frame {first} but the video has only {count} frames")
    return count, time.perf_counter() - start


class _Writers:
    """tracks.json and overlay.mp4 writers fed together, finalised together."""

    def __init__(self, tracks: TracksWriter | None, overlay: OverlayWriter | None) -> None:
        self.tracks = tracks
        self.overlay = overlay
        self.paths: list[Path] = []
        self.seen_objects: set[int] = set()

    def write(self, frame: Frame, result: FrameResult) -> None:
        for obj_id, obj in result.objects.items():
            self.seen_objects.add(obj_id)
            if self.tracks is not None:
                mask = obj.mask if obj.visible else np.zeros_like(obj.mask)
                self.tracks.add(frame.index, obj_id, mask, obj.score, obj.visible)
        if self.overlay is not None:
            masks = {o: r.mask for o, r in result.objects.items() if r.visible}
            self.overlay.write(frame, masks)

    def finish(self, num_frames: int) -> list[int]:
        if self.overlay is not None:
            self.paths.append(self.overlay.close())
        if self.tracks is not None:
            self.paths.append(self.tracks.finish(num_frames))
        return sorted(self.seen_objects)


def _open_writers(stack: ExitStack, request, out_dir, info, meta, model_meta) -> _Writers:
    """The requested writers, registered on ``stack`` so that an error leaves no file."""
    tracks = overlay = None
    if request.write_tracks:
        tracks = stack.enter_context(TracksWriter(out_dir / TRACKS_FILE, meta, model_meta))
    if request.write_overlay:
        overlay = stack.enter_context(OverlayWriter(out_dir / OVERLAY_FILE, info))
    return _Writers(tracks, overlay)
