"""The queue job: one ``JobSpec`` through ``segment_video`` inside an RQ worker.

``run_job(spec)`` is the only function workers run. Before the first frame it checks what can
fail cheaply, so such a job fails at frame 0 within seconds: the output location takes a file
(a probe, written and removed), the checkpoint loads (with the model, through the per-process
cache kept across jobs), the prompts and the input resolve (local path, http(s) or fsspec
URL). Then it tracks the
video while writing progress into the job's meta, stops between frames when a cancel flag is
set, saves a checkpoint every N frames next to the outputs and, when an earlier attempt of the
same job died, resumes from the last one. The result is published files-first, manifest-last.
Each attempt takes a fencing token first (``worker.runtimes.queue.fence``): an attempt that a
newer one superseded (its heartbeats stalled, another worker took the job over) stops at its
next write, leaving the job, its meta and its outputs to the newer one.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from rq import get_current_job
from rq.job import Job, validate_job_id

from configs.errors import InputError, OutputError, ReadInterrupted, StreamsegError, TransientError
from configs.settings import QueueSettings, TrackerSettings, load_settings
from jobs.output_names import OVERLAY_FILE, TRACKS_FILE
from jobs.prompts import Prompt, merge_prompts
from jobs.queue import JobMeta, job_timeout_s, read_meta, write_meta
from jobs.redis_keys import job_cancel_key
from jobs.spec import JobSpec, data_url_bytes, parse_spec
from jobs.storage import (
    MANIFEST_NAME,
    Location,
    Manifest,
    Retrier,
    fetch_input,
    open_location,
    publish,
    read_bytes,
    read_manifest,
    remove,
    write_bytes,
)
from jobs.tracks import spool_path_for
from worker.pipeline.segment import (
    Cancelled,
    Progress,
    ResumeFailed,
    ResumeFrom,
    SegmentRequest,
    SegmentSummary,
    segment_video,
)
from worker.runtimes.queue.fence import AttemptFence, Superseded
from worker.runtimes.queue.job_checkpoint import (
    CHECKPOINT_DIR,
    Checkpointer,
    CheckpointStore,
    restore,
)

log = logging.getLogger("streamseg.job")


class JobTimedOut(StreamsegError):
    """The attempt ran longer than the video's length allows."""


class WorkerStopping(StreamsegError):
    """The worker was asked to shut down: the job goes back on the queue and resumes."""


# Set by the worker (``worker.runtimes.queue.rq_hooks``) on a shutdown request; checked between
# frames.
shutdown_requested = threading.Event()


def run_job(spec: dict) -> dict:
    """RQ entry point (called by name with JSON arguments); returns the manifest as JSON."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("run_job runs inside a streamseg worker")
    settings = load_settings()
    runner = JobRunner(job, parse_spec(spec), settings.queue, settings.tracker)
    return runner.run().model_dump(mode="json")


class _Reporter:
    """Progress into the job's meta, at most every ``every_s`` seconds (best effort), while
    ``fence`` owns the job (a superseded attempt's writes are refused and dropped)."""

    def __init__(self, job: Job, every_s: float) -> None:
        self.job, self.every_s = job, every_s
        self.meta: JobMeta = read_meta(job)
        self.fence: AttemptFence | None = None
        self._last = 0.0

    def update(self, force: bool = False, **fields) -> None:
        progress = self.meta.progress.model_copy(update=fields)
        self.meta = self.meta.model_copy(update={"progress": progress})
        now = time.monotonic()
        if force or now - self._last >= self.every_s:
            self._last = now
            try:
                if self.fence is None:
                    write_meta(self.job, self.meta)
                elif not self.fence.write_meta(self.job, self.meta):
                    log.warning("job %s: progress refused: a newer attempt owns it", self.job.id)
            except Exception as error:  # progress must never fail a job
                log.warning("job %s: progress not saved: %s", self.job.id, error)

    def on_progress(self, progress: Progress) -> None:
        left = None if progress.total is None else max(progress.total - progress.frame, 0)
        eta = left / progress.fps if left is not None and progress.fps > 0 else None
        done = progress.total is not None and progress.frame >= progress.total
        self.update(force=done, frame=progress.frame, total=progress.total, fps=progress.fps,
                    eta_s=eta)  # fmt: skip


@dataclass
class JobRunner:
    job: Job
    spec: JobSpec
    settings: QueueSettings
    tracker: TrackerSettings

    def __post_init__(self) -> None:
        self.retrier = Retrier(self.settings.storage_attempts, self.settings.storage_backoff_s)
        self.reporter = _Reporter(self.job, self.settings.progress_every_s)
        self.digest = self.spec.digest()
        self._deadline: float | None = None
        self._created_output = False  # the probe made the (local) output folder
        self._started = time.monotonic()

    def run(self) -> Manifest:
        self.fence = AttemptFence.take(self.job.connection, self.job.id)
        self.job.attempt_fence = self.fence  # the worker ends a superseded attempt quietly
        self.reporter.fence = self.fence
        attempt = self.reporter.meta.progress.attempt + 1
        self.reporter.update(
            force=True, attempt=attempt, frame=0, fps=0.0, eta_s=None, resumed_from=None
        )
        self._wait_before_retry()
        output = self.retrier.call(
            f"cannot open {self.spec.output}", lambda: open_location(self.spec.output)
        )
        self._probe_output(output)
        store = CheckpointStore(output.sub(CHECKPOINT_DIR), self.retrier)
        done = self.retrier.call(f"cannot read {self.spec.output}", lambda: read_manifest(output))
        if done is not None and done.job_id == self.job.id and done.spec_digest == self.digest:
            self._clear(store)  # an earlier attempt published and died before saying so
            return done
        self.fence.check("clearing the old manifest")
        self.retrier.call("cannot clear the old manifest", lambda: remove(output, MANIFEST_NAME))
        with self._scratch() as scratch:
            try:
                try:
                    summary = self._segment(scratch, store)
                except ReadInterrupted as interrupted:  # a signal, not the input
                    raise self._interruption(interrupted) from None
            except (Cancelled, InputError, JobTimedOut):
                self._clear(store)  # this job will not resume
                self._remove_if_created(output)
                raise
            self.fence.check("publishing the outputs")
            manifest = self._publish(output, scratch / "out", summary)
        self._clear(store)
        return manifest

    def _clear(self, store: CheckpointStore) -> None:
        """Remove the checkpoint: only while no newer attempt may be resuming from it."""
        self.fence.check("removing the checkpoint")
        store.clear()

    # ----- steps ---------------------------------------------------------------------------
    def _probe_output(self, output: Location) -> None:
        """The output location takes a file: write one and remove it (``OutputError`` if not)."""
        name = f".streamseg-probe-{self.job.id}"
        self._created_output = output.is_local and not os.path.exists(output.root)

        def probe() -> None:
            write_bytes(output, name, b"")
            remove(output, name)

        try:
            self.retrier.call(f"output {self.spec.output} is not writable", probe)
        except InputError as error:
            raise OutputError(str(error)) from None

    def _remove_if_created(self, output: Location) -> None:
        """A job that will not resume leaves no empty output folder it made itself."""
        if self._created_output:
            try:
                os.rmdir(output.root)  # only when empty
            except OSError:
                pass

    def _segment(self, scratch: Path, store: CheckpointStore) -> SegmentSummary:
        from worker.engines.registry import load_engine

        engine = load_engine(self._tracker_settings(), show_progress=False)  # checkpoint first
        prompts = self._prompts(scratch / "masks")
        source = fetch_input(self.spec.source, scratch / "input", self.retrier)
        out_dir = scratch / "out"
        request = SegmentRequest(
            source=source,
            out_dir=out_dir,
            prompts=prompts,
            write_tracks=True,  # the spool is what crash-resume continues from
            write_overlay="overlay" in self.spec.outputs,
            max_frames=self.spec.max_frames,
        )
        state = store.load(self.job.id, self.digest)
        if state is not None:
            try:
                resume = restore(store, state, spool_path_for(out_dir / TRACKS_FILE))
                return self._track(request, engine, store, resume, state)
            except (ResumeFailed, FileNotFoundError) as error:
                log.warning("job %s: cannot resume (%s); starting over", self.job.id, error)
                store.clear()
        return self._track(request, engine, store, None, None)

    def _track(self, request, engine, store, resume: ResumeFrom | None, state) -> SegmentSummary:
        every = self.spec.checkpoint_every or self.settings.checkpoint_every
        spool = spool_path_for(Path(request.out_dir) / TRACKS_FILE)
        checkpointer = Checkpointer(
            store, spool, every, (self.job.id, self.digest), state,
            on_saved=lambda frame: self.reporter.update(force=True, checkpoint=frame),
            before_save=lambda: self.fence.check("saving a checkpoint"),
        )  # fmt: skip
        self.reporter.update(force=True, resumed_from=resume.frame if resume else None)
        return segment_video(
            request,
            engine.make_tracker,
            engine.model,
            self.reporter.on_progress,
            self._should_stop,
            resume=resume,
            before_frame=checkpointer,
        )

    def _publish(self, output: Location, out_dir: Path, summary: SegmentSummary) -> Manifest:
        names = {"tracks": TRACKS_FILE, "overlay": OVERLAY_FILE}
        files = [out_dir / names[kind] for kind in self.spec.outputs]
        return publish(
            output,
            files,
            job_id=self.job.id,
            spec_digest=self.digest,
            num_frames=summary.num_frames,
            object_ids=summary.object_ids,
            retrier=self.retrier,
        )

    # ----- helpers -------------------------------------------------------------------------
    def _interruption(self, interrupted: ReadInterrupted) -> StreamsegError:
        """What a read of the video cut short by a signal means in this worker, whose own
        handlers do not raise (PyAV raised in their place): a shutdown (requeued), RQ's job
        timeout (its SIGALRM: timed out, not retried), or anything else (retried)."""
        if shutdown_requested.is_set():
            return WorkerStopping(f"worker shutting down: {interrupted}")
        timeout = self.job.timeout
        if timeout is not None and 0 < timeout <= time.monotonic() - self._started + 1:
            return JobTimedOut(f"timed out after {timeout} s: {interrupted}")
        return TransientError(str(interrupted))

    def _should_stop(self) -> bool:
        """Between frames: superseded? cancelled? past the deadline this video's length allows?"""
        progress = self.reporter.meta.progress
        if self._deadline is None and progress.total is not None and self.spec.timeout_s is None:
            self._deadline = time.monotonic() + job_timeout_s(progress.total, self.settings)
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise JobTimedOut(f"timed out at frame {progress.frame} of {progress.total}")
        if shutdown_requested.is_set():
            raise WorkerStopping(f"worker shutting down at frame {progress.frame}; requeued")
        try:
            self.fence.check(f"frame {progress.frame}")
            return bool(self.job.connection.exists(job_cancel_key(self.job.id)))
        except Superseded:
            raise
        except Exception as error:  # Redis away for a moment: keep tracking
            log.warning("job %s: cannot check for cancellation: %s", self.job.id, error)
            return False

    def _wait_before_retry(self) -> None:
        """A retry after a transient failure waits out its backoff (still cancellable)."""
        until = self.reporter.meta.retry_after
        while until is not None and time.time() < until:
            if self._should_stop():
                raise Cancelled("cancelled while waiting to retry")
            time.sleep(min(0.5, until - time.time()))

    def _prompts(self, mask_dir: Path) -> list[Prompt]:
        """The spec's prompts as tracker prompts; inline and remote masks made local files."""
        prompts = []
        for index, prompt in enumerate(self.spec.prompts):
            if prompt.mask is not None:
                name = f"mask-{index}.png"
                mask_dir.mkdir(parents=True, exist_ok=True)
                (mask_dir / name).write_bytes(self._mask_bytes(prompt.mask))
                prompt = prompt.model_copy(update={"mask": name})
            prompts.append(prompt.to_prompt(mask_dir))
        return merge_prompts(prompts)

    def _mask_bytes(self, mask: str) -> bytes:
        data = data_url_bytes(mask)
        if data is not None:
            return data
        location = open_location(mask)
        folder = Location(location.fs, location.root.rsplit("/", 1)[0], mask)
        name = location.root.rsplit("/", 1)[1]
        data = self.retrier.call(f"cannot read mask {mask}", lambda: read_bytes(folder, name))
        if data is None:
            raise InputError(f"no such mask file: {mask}")
        return data

    def _tracker_settings(self) -> TrackerSettings:
        checkpoint = Path(self.spec.checkpoint) if self.spec.checkpoint else None
        return replace(
            self.tracker,
            model=self.spec.model,
            checkpoint=checkpoint,
            image_size=self.spec.image_size,
            device=self.settings.device or self.tracker.device,
            offload_memory_to_cpu=self.spec.offload_memory or self.tracker.offload_memory_to_cpu,
        )

    @contextmanager
    def _scratch(self) -> Iterator[Path]:
        try:
            validate_job_id(self.job.id)  # RQ checks ids it creates, not ids read from Redis
        except ValueError as error:
            raise InputError(f"bad job id {self.job.id!r}: {error}") from None
        # one folder per attempt: two attempts on one machine never share (or remove) a scratch
        work = Path(self.settings.work_dir)
        for earlier in [work / self.job.id, *work.glob(f"{self.job.id}.*")]:
            shutil.rmtree(earlier, ignore_errors=True)  # left by attempts that died
        scratch = work / f"{self.job.id}.{self.fence.token}"
        scratch.mkdir(parents=True)
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
