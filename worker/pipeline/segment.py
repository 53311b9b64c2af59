"""One video through the tracker into tracks.json and overlay.mp4, streaming.

Frames are decoded (and preprocessed for the model) ahead of it in a producer thread, prompts
are handed to the tracker on their frame, and each result is written behind it (RLE, tracks
spool, overlay encoding) by one ordered writer thread (``worker.pipeline.stages``), so on a GPU
the CPU stages overlap with the model. ``SegmentRequest.overlap=False`` runs the same calls in
the same order in one thread: the outputs are the same either way. Outputs appear only when
the whole video succeeded: on any error (bad video, prompt past the end, cancellation, a failed
write in the writer thread, raised at the next frame) no tracks.json or overlay.mp4 is left.

Crash-resume (queue jobs): ``before_frame`` sees the tracker before each frame is tracked (a
checkpointer snapshots it there), and ``resume`` continues a run from such a snapshot and the
interrupted run's tracks spool: earlier frames are decoded again only to re-draw the overlay
from the spooled masks, so every output has each frame exactly once.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from configs.errors import InputError, StreamsegError
from jobs.mask_codec import rle_to_mask
from jobs.media import Frame, VideoInfo
from jobs.output_names import OUTPUT_FILES, OVERLAY_FILE, TRACKS_FILE
from jobs.overlay import OverlayWriter
from jobs.prompts import Prompt, check_prompt_frames, validate_prompts
from jobs.tracks import TracksWriter, read_spool, spool_path_for
from jobs.urls import is_url
from worker.engines.contract import Snapshotting, Tracker
from worker.pipeline.output_dir import prepare_output_dir, remove_debris, write_errors
from worker.pipeline.result_files import ResultFiles
from worker.pipeline.stages import InlineWriter, OrderedWriter, prefetched
from worker.video.source import VideoSource, open_video

if TYPE_CHECKING:
    from jobs.media import ModelInfo
    from worker.engines.contract import FrameResult

PREFETCH_DEPTH = 2  # frames decoded and preprocessed ahead of the model
WRITE_DEPTH = 4  # frames' results waiting for the writer (back-pressure beyond)


class Cancelled(StreamsegError):
    """The run was asked to stop; nothing it wrote is marked complete."""


class ResumeFailed(StreamsegError):
    """A saved state cannot be continued (other video, no spool, tracker without snapshots)."""


@dataclass(frozen=True)
class Progress:
    """``frame``: frames done so far; ``total``: frames in the video if known; ``fps``.

    Within a frame with many objects (a tracker with an ``on_objects(done, total)`` hook),
    reports also come between frames: ``objects_done`` of ``objects_total`` objects of the
    frame being tracked (None otherwise).
    """

    frame: int
    total: int | None
    fps: float
    objects_done: int | None = None
    objects_total: int | None = None


@dataclass(frozen=True)
class SegmentRequest:
    source: str
    out_dir: Path
    prompts: Sequence[Prompt]
    write_tracks: bool = True
    write_overlay: bool = True
    max_frames: int | None = None  # stop after this many frames (a preview of long videos)
    overlap: bool = True  # decode ahead of and write behind the model in threads


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
FrameHook = Callable[[int, Tracker], None]


@dataclass(frozen=True)
class ResumeFrom:
    """Continue a run that was interrupted before ``frame``.

    ``tracker_state``: the tracker's ``snapshot()`` taken before ``frame`` was tracked. The
    interrupted run's spool must be at ``out_dir/tracks.json.spool`` and hold every frame
    before ``frame`` (records of later frames are dropped).
    """

    frame: int
    tracker_state: bytes


@dataclass(frozen=True)
class _Hooks:
    on_progress: Callable[[Progress], None] | None
    should_stop: Callable[[], bool] | None
    before_frame: FrameHook | None


def segment_video(
    request: SegmentRequest,
    make_tracker: TrackerFactory,
    model: ModelInfo,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    resume: ResumeFrom | None = None,
    before_frame: FrameHook | None = None,
    video: VideoSource | None = None,
) -> SegmentSummary:
    """Run ``request`` to completion; raises ``StreamsegError`` subclasses on bad input.

    ``before_frame(index, tracker)`` runs before each tracked frame (before its prompts are
    added); ``resume`` continues an interrupted run (see :class:`ResumeFrom`). ``video``: the
    request's source already opened (by :func:`checked_video`; it stays the caller's to
    close), else it is opened here.
    """
    out_dir = Path(request.out_dir)
    if resume is not None and not request.write_tracks:
        raise ValueError("resuming needs the tracks spool: write_tracks must be set")
    _check_before_video(request, keep_spool=resume is not None)
    hooks = _Hooks(on_progress, should_stop, before_frame)
    with nullcontext(video) if video is not None else open_video(request.source) as video:
        info = video.info
        _check_against_video(request, info)
        tracker = _start_tracker(make_tracker, info, resume)
        with _no_debris_on_failure(out_dir), write_errors(out_dir), ExitStack() as stack:
            writers = _open_writers(stack, request, out_dir, info, model, resume)
            start = resume.frame if resume is not None else 0
            count, seconds = _run_frames(video, tracker, request, writers, hooks, start)
            object_ids = writers.finish(count)
    return SegmentSummary(count, object_ids, seconds, writers.paths)


@contextmanager
def _no_debris_on_failure(out_dir: Path) -> Iterator[None]:
    """The writers remove their temporary files when a run fails; where that cleanup itself
    fails (a full disk refuses even the buffered spool's last flush), this finishes it."""
    try:
        yield
    except BaseException:
        with suppress(OSError, StreamsegError):
            remove_debris(out_dir, OUTPUT_FILES)
        raise


@contextmanager
def checked_video(request: SegmentRequest) -> Iterator[VideoSource]:
    """The checks :func:`segment_video` makes before its first frame, without a model (the
    output folder, ``max_frames``, the prompts against the video's size and length), and the
    video they opened, for ``segment_video(..., video=...)``. A command runs them before
    loading its model, so that bad input is found in a second, and hands the same open video
    on: a source that can be read only once (a FIFO, a pipe such as ``/dev/stdin``) is read
    once, from its first byte."""
    _check_before_video(request, keep_spool=False)
    with open_video(request.source) as video:
        _check_against_video(request, video.info)
        yield video


def _check_before_video(request: SegmentRequest, keep_spool: bool) -> None:
    out_dir = Path(request.out_dir)
    source = Path(request.source)
    if not is_url(request.source) and source.exists():
        targets = {(out_dir / name).resolve() for name in OUTPUT_FILES}
        if source.resolve() in targets:  # clearing the old results would delete the input
            raise InputError(f"the video {source} is one of the outputs: choose another --out")
    # the folder is checked and cleared (old results, killed runs' debris) before anything
    prepare_output_dir(out_dir, OUTPUT_FILES, keep_spool=keep_spool)
    if not request.prompts:
        raise InputError("no prompts given: add --point, --box, --mask or --prompts")
    check_max_frames(request.max_frames)


def _check_against_video(request: SegmentRequest, info: VideoInfo) -> None:
    validate_prompts(request.prompts, info.width, info.height)
    check_prompt_frames(request.prompts, info.num_frames, request.max_frames)


def check_max_frames(max_frames: int | None) -> None:
    """``max_frames`` is None (the whole video) or at least 1."""
    if max_frames is not None and (isinstance(max_frames, bool) or max_frames < 1):
        raise InputError(f"--max-frames must be at least 1, got {max_frames}")


def _start_tracker(make_tracker: TrackerFactory, info: VideoInfo, resume: ResumeFrom | None):
    tracker = make_tracker(info)
    if resume is None:
        return tracker
    if not isinstance(tracker, Snapshotting):
        raise ResumeFailed(f"{type(tracker).__name__} cannot restore a snapshot")
    try:
        tracker.restore(resume.tracker_state)
    except Exception as error:  # a damaged or foreign snapshot: start over instead
        raise ResumeFailed(f"cannot restore the tracker: {error}") from None
    if tracker.frame_idx != resume.frame:
        raise ResumeFailed(f"snapshot is of frame {tracker.frame_idx}, not {resume.frame}")
    return tracker


class _Clock:
    """Progress reports: frames done (replayed or tracked) and the tracking rate."""

    def __init__(self, total: int | None, start: int, report) -> None:
        self.total, self.start, self.report = total, start, report
        self.began = self.began_tracking = time.perf_counter()
        self.count = 0

    def tick(self, count: int) -> None:
        now = time.perf_counter()
        self.count = count
        if count <= self.start:  # replaying: the rate of the tracking to come is unknown
            self.began_tracking = now
        if self.report is not None:
            self.report(Progress(count, self.total, self._fps(now)))

    def objects(self, done: int, total: int) -> None:
        """Within the frame after ``count``: ``done`` of its ``total`` objects tracked."""
        if self.report is not None:
            fps = self._fps(time.perf_counter())
            self.report(Progress(self.count, self.total, fps, done, total))

    def _fps(self, now: float) -> float:
        elapsed, tracked = now - self.began_tracking, self.count - self.start
        return tracked / elapsed if tracked > 0 and elapsed > 0 else 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.began


@runtime_checkable
class _Preprocessing(Protocol):
    """A tracker whose frame preparation can run in another thread (``StreamingTracker``)."""

    def preprocess(self, rgb: Any) -> Any: ...

    def step_preprocessed(self, image: Any, video_hw: tuple[int, int]) -> FrameResult: ...


def _run_frames(video, tracker, request, writers, hooks, start) -> tuple[int, float]:
    by_frame: dict[int, list[Prompt]] = defaultdict(list)
    for prompt in request.prompts:
        if prompt.frame >= start:  # earlier prompts are in the restored tracker already
            by_frame[prompt.frame].append(prompt)
    max_frames = request.max_frames
    total = video.info.num_frames
    if max_frames is not None:
        total = min(total, max_frames) if total is not None else max_frames
    clock, count = _Clock(total, start, hooks.on_progress), 0
    clock.tick(0)  # the total is shown before the first (possibly long) frame
    if getattr(tracker, "on_objects", False) is None and hooks.on_progress is not None:
        tracker.on_objects = clock.objects  # progress within frames of many objects
    with _stages(video, tracker, request, start) as (frames, behind):
        for frame, image in frames:
            if hooks.should_stop is not None and hooks.should_stop():
                raise Cancelled(f"cancelled at frame {frame.index}")
            if frame.index < start:
                behind.submit(writers.replay, frame)
            else:
                _track(frame, image, tracker, by_frame, hooks, behind, writers)
            count += 1
            clock.tick(count)
    if count < start:
        raise ResumeFailed(f"the video has {count} frames, fewer than the saved {start}")
    if by_frame:  # the video's length was not known (or overstated) up front
        frames = [p for f in by_frame.values() for p in f]
        limited = max_frames is not None and count >= max_frames
        check_prompt_frames(frames, None if limited else count, max_frames if limited else None)
    return count, clock.seconds()


def _track(frame: Frame, image, tracker, by_frame, hooks: _Hooks, behind, writers) -> None:
    """One frame through the tracker (``image``: its preprocessed input, or None); the
    result is handed to the writer stage."""
    if hooks.before_frame is not None:
        behind.flush()  # a checkpointer reads the tracks spool up to this frame
        hooks.before_frame(frame.index, tracker)
    for prompt in by_frame.pop(frame.index, []):
        tracker.add_prompt(prompt)
    if image is not None:
        result = tracker.step_preprocessed(image, frame.rgb.shape[:2])
    else:
        result = tracker.step(frame.rgb)
    behind.submit(writers.write, frame, result)


@contextmanager
def _stages(video, tracker, request: SegmentRequest, start: int):
    """(frames, writer): an iterator of (frame, preprocessed input or None) and the stage
    that runs the writes, both in threads where ``request.overlap`` (see the module)."""
    preprocess = tracker.preprocess if isinstance(tracker, _Preprocessing) else None

    def prepared() -> Iterator[tuple[Frame, Any]]:
        for frame in video:
            if request.max_frames is not None and frame.index >= request.max_frames:
                return
            ready = preprocess is not None and frame.index >= start
            yield frame, preprocess(frame.rgb) if ready else None

    if not request.overlap:
        with InlineWriter() as behind:
            yield prepared(), behind
        return
    ahead = prefetched(prepared(), PREFETCH_DEPTH, interrupt=video.interrupt)
    with ahead as frames, OrderedWriter(WRITE_DEPTH) as behind:
        yield frames, behind


class _Writers:
    """The run's writer pair (``ResultFiles``), its replay of spooled frames on resume, and
    write failures as one ``OutputError`` line."""

    def __init__(
        self,
        out_dir: Path,
        files: ResultFiles,
        replay: Iterator[tuple[int, dict]] | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.files = files
        self.paths: list[Path] = []
        self._replay = replay
        self._pending: tuple[int, dict] | None = None

    def replay(self, frame: Frame) -> None:
        """An already-tracked frame: draw its spooled masks into the overlay again."""
        entries = self._spooled(frame.index)
        self.files.seen_objects.update(entries)
        masks = {o: rle_to_mask(e["rle"]) for o, e in entries.items() if e["visible"]}
        with write_errors(self.out_dir):
            self.files.draw(frame, masks)

    def _spooled(self, index: int) -> dict:
        if self._pending is None and self._replay is not None:
            self._pending = next(self._replay, None)
        if self._pending is None or self._pending[0] != index:
            return {}  # no object prompted yet on this frame
        entries, self._pending = self._pending[1], None
        return entries

    def write(self, frame: Frame, result: FrameResult) -> None:
        with write_errors(self.out_dir):
            self.files.write(frame, result.objects.values())

    def finish(self, num_frames: int) -> list[int]:
        """Finish every output, or none (``ResultFiles.finish``); the object ids seen."""
        with write_errors(self.out_dir):
            self.paths = self.files.finish(num_frames)
        return sorted(self.files.seen_objects)


def _open_writers(
    stack: ExitStack, request, out_dir, info: VideoInfo, model, resume: ResumeFrom | None
) -> _Writers:
    """The requested writers, registered on ``stack`` so that an error leaves no file."""
    tracks = overlay = replay = None
    path = out_dir / TRACKS_FILE
    if resume is not None:
        try:
            tracks = TracksWriter.resume(path, info, model, resume.frame)
        except (FileNotFoundError, ValueError) as error:
            raise ResumeFailed(f"cannot resume the tracks: {error}") from None
        stack.enter_context(tracks)
        replay = stack.enter_context(closing(_spooled_frames(spool_path_for(path), info)))
    elif request.write_tracks:
        with write_errors(out_dir):
            tracks = stack.enter_context(TracksWriter(path, info, model))
    if request.write_overlay:
        with write_errors(out_dir):
            overlay = stack.enter_context(OverlayWriter(out_dir / OVERLAY_FILE, info))
    return _Writers(out_dir, ResultFiles(tracks, overlay), replay)


def _spooled_frames(spool: Path, info: VideoInfo) -> Iterator[tuple[int, dict]]:
    """(frame, {object id: tracks.json entry}) for each frame in a spool, in order."""
    frame, entries = None, {}
    for line in read_spool(spool, info):  # the spool's own reader (jobs.tracks)
        if line.frame != frame and entries:
            yield frame, entries
            entries = {}
        frame = line.frame
        entries[line.obj_id] = json.loads(line.entry)
    if entries:
        yield frame, entries
