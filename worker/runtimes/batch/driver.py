"""The batch loop: known problems first, then every video in order, skipping complete ones."""

from __future__ import annotations

from collections.abc import Iterator

from worker.runtimes.batch.inputs import Discovery
from worker.runtimes.batch.progress import BatchProgress
from worker.runtimes.batch.runner import (
    Status,
    VideoResult,
    VideoRunner,
    pending_results,
    probe_frames,
    problem_results,
    skipped_result,
)


def run_batch(
    discovery: Discovery, runner: VideoRunner, progress: BatchProgress
) -> Iterator[VideoResult]:
    """Yield one result per video (and per known problem) as each finishes.

    After an ``INTERRUPTED`` result the videos not yet run are yielded as ``PENDING``.
    """
    yield from problem_results(discovery, runner.prompts)
    plan = [(video, runner.completed(video)) for video in discovery.videos]
    to_run = [video for video, manifest in plan if manifest is None]
    totals = {video.name: probe_frames(video, runner.options.max_frames) for video in to_run}
    known = [total for total in totals.values() if total is not None]
    progress.start(sum(known) if known else None, len(to_run))
    for position, (video, manifest) in enumerate(plan):
        if manifest is not None:
            yield skipped_result(video, manifest, runner.folder(video))
            continue
        with progress.video(video.name, totals[video.name]) as bar:
            result = runner.run(video, bar.update)
        yield result
        if result.status is Status.INTERRUPTED:
            for later, done in plan[position + 1 :]:
                if done is not None:
                    yield skipped_result(later, done, runner.folder(later))
                else:
                    yield from pending_results([later])
            return
