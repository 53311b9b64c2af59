"""``annotate --queue``: one queue job per video, followed to the end; exports made here.

Each video's job writes ``tracks.json`` (and ``overlay.mp4``) into ``OUT/<video>/`` on the
workers; when it finishes, its files are checked against the job's manifest, the annotation
exports are made from ``tracks.json`` here, and the batch manifest is written beside the
job's (it lists the job's files too). ``OUT/<video>/job.json`` remembers the job, so a
rerun follows a job still queued or running (or collects a finished one) instead of
submitting it twice.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from configs.errors import InputError, StreamsegError
from jobs.output_names import TRACKS_FILE
from jobs.tracks import read_tracks
from worker.runtimes.batch.exports import ExportKind, check_object_ids, write_exports
from worker.runtimes.batch.inputs import Discovery, VideoInput
from worker.runtimes.batch.manifest import (
    Manifest,
    OutputRequest,
    complete_manifest,
    file_entries,
    write_manifest,
)
from worker.runtimes.batch.progress import QueueProgress
from worker.runtimes.batch.prompt_sources import PromptSource
from worker.runtimes.batch.runner import (
    BatchOptions,
    Status,
    VideoResult,
    problem_results,
    skipped_result,
)
from worker.runtimes.stopping import StopRequest

if TYPE_CHECKING:
    from jobs.spec import JobSpec

JOB_RECORD = "job.json"
FAILED_STATES = frozenset({"failed", "stopped", "canceled"})


class JobQueueLike(Protocol):
    """What the batch needs of ``jobs.queue.JobQueue``."""

    def submit(self, spec, job_id: str | None = None): ...

    def get(self, job_id: str): ...

    def result(self, job_id: str, check: bool = True): ...


@dataclass(frozen=True)
class QueueModel:
    """The model part of every job's spec (``model`` may be ``auto``: the worker decides)."""

    model: str
    checkpoint: Path | None
    image_size: int | None
    offload_memory: bool


@dataclass
class QueuedVideo:
    """A video's job. ``to_queue``: the spec of a job this run gave its id (recorded, not
    yet queued); None for a recorded job already on the queue."""

    video: VideoInput
    job_id: str
    start: float
    to_queue: JobSpec | None = None


@dataclass
class QueuedBatch:
    queue: JobQueueLike
    prompts: PromptSource
    options: BatchOptions
    model: QueueModel
    poll_s: float = 0.5

    @property
    def request(self) -> OutputRequest:
        exports = tuple(kind.value for kind in self.options.exports)
        model = None if self.model.model == "auto" else self.model.model
        return OutputRequest(exports, self.options.max_frames, model)

    def folder(self, video: VideoInput) -> Path:
        return Path(os.path.abspath(self.options.out_dir / video.name))

    def spec(self, video: VideoInput) -> JobSpec:
        from jobs.spec import parse_spec, prompt_to_spec

        given = self.prompts.prompts_for(video)
        check_object_ids(self.options.exports, (prompt.obj_id for prompt in given))
        prompts = [prompt_to_spec(p).model_dump(mode="json") for p in given]
        overlay = ExportKind.OVERLAY in self.options.exports
        return parse_spec(
            {
                "source": os.path.abspath(video.source),
                "output": str(self.folder(video)),
                "prompts": prompts,
                "model": self.model.model,
                "checkpoint": str(Path(self.model.checkpoint).resolve())
                if self.model.checkpoint
                else None,
                "image_size": self.model.image_size,
                "outputs": ["tracks", "overlay"] if overlay else ["tracks"],
                "max_frames": self.options.max_frames,
                "offload_memory": self.model.offload_memory,
            }
        )

    def prepare(self, video: VideoInput) -> QueuedVideo:
        """The video's job: the one recorded for the same spec, or a new id, recorded in
        ``job.json`` before ``enqueue`` queues it, so that no Ctrl-C can leave a queued job
        without its record (a record whose job never reached the queue is simply replaced by
        the next run)."""
        spec = self.spec(video)
        folder = self.folder(video)
        folder.mkdir(parents=True, exist_ok=True)
        job_id = self._reusable_job(folder, spec)
        if job_id is not None:
            return QueuedVideo(video, job_id, time.perf_counter())
        job_id = uuid.uuid4().hex
        (folder / JOB_RECORD).write_text(json.dumps({"job_id": job_id}) + "\n")
        return QueuedVideo(video, job_id, time.perf_counter(), to_queue=spec)

    def enqueue(self, item: QueuedVideo) -> None:
        """Put a prepared new job on the queue (its record is removed if that fails)."""
        if item.to_queue is None:
            return
        try:
            self.queue.submit(item.to_queue, job_id=item.job_id)
        except StreamsegError:
            (self.folder(item.video) / JOB_RECORD).unlink(missing_ok=True)
            raise
        item.to_queue = None

    def _reusable_job(self, folder: Path, spec) -> str | None:
        try:
            job_id = json.loads((folder / JOB_RECORD).read_text())["job_id"]
            view = self.queue.get(str(job_id))
        except (OSError, ValueError, KeyError, TypeError, InputError):
            return None
        if view.state in FAILED_STATES or view.spec != spec:
            return None
        return view.id

    def finish(self, item: QueuedVideo, view) -> VideoResult:
        """The result of a job that ended: exports and manifest here when it finished."""
        name = item.video.name
        if view.state != "finished":
            error = view.meta.error
            reason = error.message if error is not None else f"job {view.state}"
            return VideoResult(name, Status.FAILED, detail=f"job {view.id}: {reason}")
        try:
            manifest = self._collect(item)
        except StreamsegError as error:
            return VideoResult(name, Status.FAILED, detail=f"job {view.id}: {error}")
        seconds = time.perf_counter() - item.start
        return VideoResult(
            name, Status.DONE, manifest.num_frames, manifest.object_ids, seconds, f"job {view.id}"
        )

    def _collect(self, item: QueuedVideo) -> Manifest:
        result = self.queue.result(item.job_id)  # checks the job's files against its manifest
        folder = self.folder(item.video)
        job_files = [folder / entry.name for entry in result.manifest.files]
        files = job_files + write_exports(folder, self.options.exports)
        model = read_tracks(folder / TRACKS_FILE).model.name or self.model.model
        request = OutputRequest(self.request.exports, self.options.max_frames, model)
        manifest = Manifest(
            video=item.video.name,
            source=str(item.video.source),
            num_frames=result.manifest.num_frames,
            object_ids=tuple(result.manifest.object_ids),
            request=request,
            files=file_entries(folder, files),
        )
        write_manifest(folder, manifest)
        (folder / JOB_RECORD).unlink(missing_ok=True)
        return manifest


def run_queued(
    discovery: Discovery, batch: QueuedBatch, progress: QueueProgress, stop: StopRequest
) -> Iterator[VideoResult]:
    """Submit every unfinished video, then yield each result as its job ends. A stop (Ctrl-C,
    SIGTERM, SIGHUP: ``stop``, checked between queue calls) at any point after the first job
    was recorded reports every recorded job as pending."""
    yield from problem_results(discovery, batch.prompts)
    running: list[QueuedVideo] = []
    try:
        yield from _submit_all(discovery, batch, running, stop)
        stop.check()
        progress.start(len(running))
        yield from _follow(batch, running, progress, stop)
    except KeyboardInterrupt:
        for item in running:
            detail = f"job {item.job_id} left on the queue: rerun to collect it"
            yield VideoResult(item.video.name, Status.PENDING, detail=detail)


def _submit_all(
    discovery: Discovery, batch: QueuedBatch, running: list[QueuedVideo], stop: StopRequest
) -> Iterator[VideoResult]:
    """Record and queue each unfinished video's job into ``running``; yield the skipped and
    the failed. A job joins ``running`` as soon as it is recorded, before it is queued."""
    for video in discovery.videos:
        stop.check()
        manifest = (
            None if batch.options.force else complete_manifest(batch.folder(video), batch.request)
        )
        if manifest is not None:
            yield skipped_result(video, manifest, batch.folder(video))
            continue
        try:
            item = batch.prepare(video)
        except StreamsegError as error:
            yield VideoResult(video.name, Status.FAILED, detail=str(error))
            continue
        running.append(item)
        try:
            batch.enqueue(item)
        except StreamsegError as error:
            running.remove(item)
            yield VideoResult(video.name, Status.FAILED, detail=str(error))


def _follow(
    batch: QueuedBatch, running: list[QueuedVideo], progress: QueueProgress, stop: StopRequest
) -> Iterator[VideoResult]:
    """Poll the jobs of ``running`` (removing each as it ends) until none is left."""
    while running:
        for item in list(running):
            stop.check()
            view = batch.queue.get(item.job_id)
            progress.update(item.video.name, view)
            if view.done:
                result = batch.finish(item, view)
                running.remove(item)
                progress.finished(item.video.name)
                yield result
        if running:
            stop.sleep(batch.poll_s)
