"""tracks.json and overlay.mp4 written side by side: the one writer pair of every runtime.

``streamseg segment`` (and queue and batch jobs through it) and a live session's recorder save
the same two files: each frame's objects go to ``jobs.tracks.TracksWriter`` (one record per
object) and are drawn by ``jobs.overlay.OverlayWriter``, and both files are finished together,
or neither is left (one that fails takes the finished one with it). Either writer may be absent
(a run that asked for one output only).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from jobs.media import Frame
    from jobs.overlay import OverlayWriter
    from jobs.tracks import TracksWriter
    from worker.engines.contract import ObjectResult


class ResultFiles:
    """Feeds ``tracks`` and ``overlay`` together; ``finish`` completes both or neither."""

    def __init__(self, tracks: TracksWriter | None, overlay: OverlayWriter | None) -> None:
        self.tracks = tracks
        self.overlay = overlay
        self.seen_objects: set[int] = set()

    def write(self, frame: Frame, objects: Iterable[ObjectResult]) -> None:
        """Record ``frame.index``'s objects and encode the frame with the visible ones drawn
        (an invisible object is recorded with an empty mask)."""
        objects = list(objects)
        for obj in objects:
            self.seen_objects.add(obj.obj_id)
            if self.tracks is not None:
                self.tracks.add(frame.index, obj.obj_id, obj.mask, obj.score, obj.visible)
        self.draw(frame, {o.obj_id: o.mask for o in objects if o.visible})

    def draw(self, frame: Frame, masks: dict[int, np.ndarray]) -> None:
        """Only the overlay: ``frame`` with ``masks`` ({id: (H, W) bool}) drawn."""
        if self.overlay is not None:
            self.overlay.write(frame, masks)

    def finish(self, num_frames: int) -> list[Path]:
        """Finish every output, or none: a failure removes the finished ones and aborts the
        rest before it is raised. Returns the paths (tracks.json first). The overlay is
        finished first: its encoder flush is the likelier to fail, and finishing tracks.json
        removes the spool that a resumed run would continue from."""
        paths: list[Path] = []
        try:
            if self.overlay is not None:
                paths.append(self.overlay.close())
            if self.tracks is not None:
                paths.insert(0, self.tracks.finish(num_frames))
        except BaseException:
            self.abort()
            for path in paths:
                path.unlink(missing_ok=True)
            raise
        return paths

    def abort(self) -> None:
        """Stop both writers and delete their temporary files; no output is left."""
        if self.tracks is not None:
            self.tracks.abort()
        if self.overlay is not None:
            self.overlay.abort()
