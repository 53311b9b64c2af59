"""The live display of a local batch: an overall bar and one bar for the current video.

Both count frames and show fps and ETA; the overall bar's description counts videos. Frame
totals come from the sources' headers; a video that ends early or fails gives its unused
frames back so the overall ETA stays honest.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from tqdm import tqdm

from worker.pipeline.segment import Progress


class BatchProgress:
    """A context manager owning the two bars (nothing is drawn when ``enabled`` is False)."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.overall: tqdm | None = None
        self.videos_total = 0
        self.videos_done = 0

    def __enter__(self) -> BatchProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.overall is not None:
            self.overall.close()
            self.overall = None

    def start(self, total_frames: int | None, num_videos: int) -> None:
        """Open the overall bar for ``num_videos`` videos to run."""
        self.videos_total = num_videos
        self.overall = tqdm(
            total=total_frames,
            unit="frame",
            desc=self._overall_desc(),
            position=0,
            file=self.stream,
            disable=not self.enabled,
            dynamic_ncols=True,
        )

    @contextmanager
    def video(self, name: str, total: int | None) -> Iterator[_VideoBar]:
        """The bar of one video; its ``update`` is the pipeline's ``on_progress``."""
        bar = tqdm(
            total=total,
            unit="frame",
            desc=name,
            position=1,
            leave=False,
            file=self.stream,
            disable=not self.enabled,
            dynamic_ncols=True,
        )
        view = _VideoBar(bar, self.overall)
        try:
            yield view
        finally:
            bar.close()
            self._video_finished(view.done, total or 0)

    def _video_finished(self, done: int, expected: int) -> None:
        self.videos_done += 1
        if self.overall is None:
            return
        if self.overall.total is not None and done != expected:
            self.overall.total = max(self.overall.total + done - expected, self.overall.n)
        self.overall.set_description(self._overall_desc(), refresh=False)
        self.overall.refresh()

    def _overall_desc(self) -> str:
        return f"overall ({self.videos_done}/{self.videos_total} videos)"


class _VideoBar:
    def __init__(self, bar: tqdm, overall: tqdm | None) -> None:
        self.bar = bar
        self.overall = overall
        self.done = 0

    def update(self, progress: Progress) -> None:
        step = progress.frame - self.done
        self.done = progress.frame
        if progress.total is not None:
            self.bar.total = progress.total
        self.bar.set_postfix(fps=f"{progress.fps:.1f}", refresh=False)
        self.bar.update(step)
        if self.overall is not None:
            self.overall.update(step)


class QueueProgress:
    """``--queue``: one overall bar over all jobs (frames from their progress meta)."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None
        self.frames: dict[str, int] = {}
        self.totals: dict[str, int | None] = {}
        self.states: dict[str, str] = {}
        self.jobs = 0
        self.ended = 0

    def __enter__(self) -> QueueProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def start(self, num_jobs: int) -> None:
        self.jobs = num_jobs
        self.bar = tqdm(
            unit="frame",
            desc=self._desc(),
            file=self.stream,
            disable=not self.enabled,
            dynamic_ncols=True,
        )

    def update(self, name: str, view) -> None:
        """``view``: a ``jobs.queue.JobView`` of the video's job."""
        progress = view.meta.progress
        self.frames[name], self.totals[name] = progress.frame, progress.total
        self.states[name] = view.state
        if self.bar is None:
            return
        totals = list(self.totals.values())
        self.bar.total = sum(totals) if totals and None not in totals else None
        done = sum(self.frames.values())
        if done >= self.bar.n:
            self.bar.update(done - self.bar.n)
        else:  # a retried job starts again
            self.bar.n = done
        running = sum(1 for state in self.states.values() if state == "started")
        self.bar.set_postfix(running=running, refresh=False)
        self.bar.refresh()

    def finished(self, name: str) -> None:
        self.ended += 1
        self.states[name] = "ended"
        if self.bar is not None:
            self.bar.set_description(self._desc())

    def _desc(self) -> str:
        return f"queue ({self.ended}/{self.jobs} videos)"
