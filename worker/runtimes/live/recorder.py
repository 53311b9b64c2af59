"""Saving a live session in the core's formats: ``tracks.json`` and ``overlay.mp4``.

Only processed frames are saved (dropped frames never reached the tracker): frame ``k`` of
both files is the ``k``-th processed frame, and ``overlay.mp4`` carries the capture times as
timestamps (millisecond time base), so it plays back at the pace the session ran.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from jobs.media import Frame, ModelInfo, VideoInfo
from jobs.output_names import OVERLAY_FILE, TRACKS_FILE
from jobs.overlay import OverlayWriter
from jobs.tracks import TracksWriter
from worker.engines.contract import ObjectResult
from worker.pipeline.result_files import ResultFiles
from worker.runtimes.live.capture import CapturedFrame

_TIME_BASE = Fraction(1, 1000)


class Recorder:
    """Writes every processed frame; ``close()`` finishes both files (a context manager).

    The files are written by the pipeline's writer pair (``worker.pipeline.result_files``):
    both are finished, or neither is left.
    """

    def __init__(
        self, out_dir: Path, width: int, height: int, fps: float, model: ModelInfo
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        info = VideoInfo(width, height, fps, None, _TIME_BASE, 0, "live")
        tracks = TracksWriter(self.out_dir / TRACKS_FILE, info, model)
        try:
            overlay = OverlayWriter(self.out_dir / OVERLAY_FILE, info)
        except BaseException:
            tracks.abort()
            raise
        self._files = ResultFiles(tracks, overlay)
        self._first_at: float | None = None
        self._last_pts = -1
        self.frames = 0

    def add(self, frame: CapturedFrame, objects: list[ObjectResult]) -> None:
        if self._first_at is None:
            self._first_at = frame.captured_at
        seconds = frame.captured_at - self._first_at
        pts = max(round(seconds * 1000), self._last_pts + 1)
        self._last_pts = pts
        self._files.write(Frame(self.frames, frame.rgb, pts, pts / 1000), objects)
        self.frames += 1

    def close(self) -> list[Path]:
        """Finish both files; nothing is written when no frame was processed."""
        if self.frames == 0:
            self.abort()
            return []
        return self._files.finish(self.frames)

    def abort(self) -> None:
        self._files.abort()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
