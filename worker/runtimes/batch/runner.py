"""Running a batch: one video at a time through one loaded engine, errors kept per video.

A video's failure (bad prompts, a wrong-size mask, a video that stops decoding) becomes a
``FAILED`` result and the batch goes on; Ctrl-C becomes an ``INTERRUPTED`` result and ends the
batch, the remaining videos ``PENDING``. Only a finished video gets its manifest.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from configs.errors import StreamsegError
from worker.engines.registry import Engine
from worker.pipeline.segment import Progress, SegmentRequest, segment_video
from worker.runtimes.batch.exports import ExportKind, check_object_ids, write_exports
from worker.runtimes.batch.inputs import Discovery, VideoInput
from worker.runtimes.batch.manifest import (
    Manifest,
    OutputRequest,
    complete_manifest,
    file_entries,
    remove_manifest,
    write_manifest,
)
from worker.runtimes.batch.prompt_sources import PromptSource
from worker.video.source import open_video

ProgressCallback = Callable[[Progress], None]


class Status(enum.Enum):
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    PENDING = "pending"


@dataclass(frozen=True)
class VideoResult:
    """The outcome of one video; ``detail`` is the error, or where the output is."""

    name: str
    status: Status
    num_frames: int = 0
    object_ids: tuple[int, ...] = ()
    seconds: float = 0.0
    detail: str = ""

    @property
    def fps(self) -> float:
        return self.num_frames / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class BatchOptions:
    out_dir: Path
    exports: tuple[ExportKind, ...]
    max_frames: int | None = None
    force: bool = False  # rerun videos whose output is complete


@dataclass
class VideoRunner:
    """Runs single videos of the batch into ``options.out_dir / video.name``."""

    engine: Engine
    prompts: PromptSource
    options: BatchOptions
    stop: Callable[[], bool] | None = field(default=None)

    @property
    def request(self) -> OutputRequest:
        exports = tuple(kind.value for kind in self.options.exports)
        return OutputRequest(exports, self.options.max_frames, self.engine.name)

    def folder(self, video: VideoInput) -> Path:
        return self.options.out_dir / video.name

    def completed(self, video: VideoInput) -> Manifest | None:
        """The manifest of an already complete output (never, with ``force``)."""
        if self.options.force:
            return None
        return complete_manifest(self.folder(video), self.request)

    def run(self, video: VideoInput, on_progress: ProgressCallback | None = None) -> VideoResult:
        """Annotate one video; every failure is returned as a result, never raised."""
        start = time.perf_counter()
        try:
            manifest = self._annotate(video, on_progress)
        except KeyboardInterrupt:
            return VideoResult(video.name, Status.INTERRUPTED, detail="interrupted")
        except StreamsegError as error:
            return VideoResult(video.name, Status.FAILED, detail=str(error))
        except Exception as error:  # a bug or a library error: still only this video's failure
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return VideoResult(video.name, Status.FAILED, detail=f"{type(error).__name__}: {first}")
        seconds = time.perf_counter() - start
        folder = str(self.folder(video))
        return VideoResult(
            video.name, Status.DONE, manifest.num_frames, manifest.object_ids, seconds, folder
        )

    def _annotate(self, video: VideoInput, on_progress: ProgressCallback | None) -> Manifest:
        folder = self.folder(video)
        folder.mkdir(parents=True, exist_ok=True)
        remove_manifest(folder)  # from here on the folder is not complete
        prompts = self.prompts.prompts_for(video)
        check_object_ids(self.options.exports, (prompt.obj_id for prompt in prompts))
        request = SegmentRequest(
            source=str(video.source),
            out_dir=folder,
            prompts=prompts,
            write_tracks=True,
            write_overlay=ExportKind.OVERLAY in self.options.exports,
            max_frames=self.options.max_frames,
        )
        summary = segment_video(
            request, self.engine.make_tracker, self.engine.model, on_progress, self.stop
        )
        files = list(summary.outputs) + write_exports(folder, self.options.exports)
        manifest = Manifest(
            video=video.name,
            source=str(video.source),
            num_frames=summary.num_frames,
            object_ids=tuple(summary.object_ids),
            request=self.request,
            files=file_entries(folder, files),
        )
        write_manifest(folder, manifest)
        return manifest


def skipped_result(video: VideoInput, manifest: Manifest, folder: Path) -> VideoResult:
    detail = f"complete in {folder}"
    return VideoResult(
        video.name, Status.SKIPPED, manifest.num_frames, manifest.object_ids, detail=detail
    )


def probe_frames(video: VideoInput, max_frames: int | None) -> int | None:
    """The number of frames the run will see, if the source says (None on any problem)."""
    try:
        with open_video(video.source) as source:
            total = source.info.num_frames
    except StreamsegError:
        return None
    if max_frames is not None:
        return max_frames if total is None else min(total, max_frames)
    return total


def problem_results(discovery: Discovery, prompts: PromptSource | None) -> Iterator[VideoResult]:
    """Failures known before anything runs: bad input paths, prompts for unknown videos."""
    for problem in discovery.problems:
        yield VideoResult(problem.name, Status.FAILED, detail=problem.message)
    for name in prompts.unknown_names(discovery.videos) if prompts is not None else ():
        message = "the prompts file names this video but no input has that name"
        yield VideoResult(name, Status.FAILED, detail=message)


def pending_results(videos: Sequence[VideoInput]) -> Iterator[VideoResult]:
    for video in videos:
        yield VideoResult(video.name, Status.PENDING, detail="not started")
