"""Crash-resume of queue jobs: the tracker's memory and the tracks spool, saved every N frames.

A job's checkpoint lives next to its outputs (``<output>/.streamseg-checkpoint/``), so a worker
on another machine can pick it up. It holds ``bank-*.pt`` (``StreamingTracker.snapshot()``:
tensors only, loaded with ``weights_only=True``), the tracks spool as append-only byte ranges
(``spool-*.part``: each save uploads only what was spooled since the last one) and, written last,
``state.json`` naming them. A save whose ``state.json`` was not written is simply not there.

Timing: the snapshot of frame ``p`` is taken before ``p`` is tracked, but the spool writer
flushes a frame's records only when the next frame starts, so the save is uploaded two frames
later, once every record of frame ``p`` is on disk; a resume then cuts the spool back to ``p``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from jobs.storage import Location, Retrier, read_bytes, remove, remove_tree, write_bytes
from worker.engines.contract import Snapshotting, Tracker
from worker.pipeline.segment import ResumeFrom

CHECKPOINT_DIR = ".streamseg-checkpoint"
STATE_NAME = "state.json"
log = logging.getLogger("streamseg.job")


class SpoolPart(BaseModel):
    """``size`` bytes from the start of the part file ``name`` belong to the spool."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    size: int


class CheckpointState(BaseModel):
    """``state.json``: the frame to continue from and the files that hold the state before it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    spec_digest: str
    frame: int
    snapshot: str
    spool: list[SpoolPart]
    saved_at: str


@dataclass(frozen=True)
class CheckpointStore:
    """The checkpoint folder of one job."""

    location: Location
    retrier: Retrier

    def load(self, job_id: str, spec_digest: str) -> CheckpointState | None:
        """The last save of this very job and spec, or None."""
        data = self.retrier.call("cannot read the checkpoint", lambda: self._read(STATE_NAME))
        if data is None:
            return None
        try:
            state = CheckpointState.model_validate_json(data)
        except ValidationError:
            log.warning("ignoring an unreadable checkpoint in %s", self.location.url)
            return None
        if state.job_id != job_id or state.spec_digest != spec_digest:
            log.warning("ignoring the checkpoint of another job in %s", self.location.url)
            return None
        return state

    def read(self, name: str) -> bytes:
        data = self.retrier.call(f"cannot read checkpoint file {name}", lambda: self._read(name))
        if data is None:
            raise FileNotFoundError(f"checkpoint file {name} is missing")
        return data

    def _read(self, name: str) -> bytes | None:
        return read_bytes(self.location, name)

    def write(self, name: str, data: bytes) -> None:
        self.retrier.call(
            f"cannot write checkpoint file {name}", lambda: write_bytes(self.location, name, data)
        )

    def commit(self, state: CheckpointState) -> None:
        """Write ``state.json`` (the save exists from here on), then drop unused files."""
        self.write(STATE_NAME, state.model_dump_json().encode())
        keep = {STATE_NAME, state.snapshot, *(part.name for part in state.spool)}
        try:
            paths = self.location.fs.ls(self.location.root, detail=False)
        except OSError:
            return
        for name in {os.path.basename(path.rstrip("/")) for path in paths} - keep:
            remove(self.location, name)

    def clear(self) -> None:
        """Forget every save (best effort: a leftover is ignored by other jobs anyway)."""
        try:
            remove_tree(self.location)
        except OSError as error:
            log.warning("could not remove checkpoint %s: %s", self.location.url, error)


def restore(store: CheckpointStore, state: CheckpointState, spool_path: Path) -> ResumeFrom:
    """Rebuild the local spool from the saved parts; the tracker state to continue from."""
    spool_path.parent.mkdir(parents=True, exist_ok=True)
    with open(spool_path, "wb") as spool:
        for part in state.spool:
            spool.write(store.read(part.name)[: part.size])
    return ResumeFrom(frame=state.frame, tracker_state=store.read(state.snapshot))


def _cut(parts: list[SpoolPart], size: int) -> list[SpoolPart]:
    """The parts that make up the first ``size`` bytes of the spool."""
    kept, offset = [], 0
    for part in parts:
        if offset >= size:
            break
        kept.append(SpoolPart(name=part.name, size=min(part.size, size - offset)))
        offset += kept[-1].size
    return kept


@dataclass
class _Pending:
    frame: int
    snapshot: bytes


class Checkpointer:
    """The pipeline's ``before_frame`` hook: a save every ``every`` frames (see module doc)."""

    def __init__(
        self,
        store: CheckpointStore,
        spool_path: Path,
        every: int,
        identity: tuple[str, str],
        resumed: CheckpointState | None = None,
        on_saved: Callable[[int], None] | None = None,
        before_save: Callable[[], None] | None = None,
    ) -> None:
        self.store, self.spool_path, self.every = store, spool_path, every
        self.job_id, self.spec_digest = identity
        self.on_saved, self.before_save = on_saved, before_save
        self._parts = list(resumed.spool) if resumed else []
        self._start = resumed.frame if resumed else 0
        self._uploaded: int | None = None  # spool bytes covered by _parts, known at frame one
        self._pending: list[_Pending] = []
        self.saved_frames: list[int] = []

    def __call__(self, index: int, tracker: Tracker) -> None:
        if self._uploaded is None:  # the spool now is what the run starts from
            self._uploaded = self._spool_size()
            self._parts = _cut(self._parts, self._uploaded)
        ready = [p for p in self._pending if p.frame <= index - 2]
        if ready:
            self._save(ready[-1])
            self._pending = [p for p in self._pending if p.frame > index - 2]
        if index > self._start and index % self.every == 0 and isinstance(tracker, Snapshotting):
            self._pending.append(_Pending(index, tracker.snapshot()))

    def _spool_size(self) -> int:
        try:
            return self.spool_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _save(self, pending: _Pending) -> None:
        if self.before_save is not None:  # raises to refuse the save (a superseded attempt)
            self.before_save()
        token = uuid.uuid4().hex[:8]
        with open(self.spool_path, "rb") as spool:
            spool.seek(self._uploaded)
            data = spool.read()
        if data:
            part = SpoolPart(name=f"spool-{pending.frame:09d}-{token}.part", size=len(data))
            self.store.write(part.name, data)
            self._parts.append(part)
            self._uploaded += len(data)
        snapshot = f"bank-{pending.frame:09d}-{token}.pt"
        self.store.write(snapshot, pending.snapshot)
        self.store.commit(
            CheckpointState(
                job_id=self.job_id,
                spec_digest=self.spec_digest,
                frame=pending.frame,
                snapshot=snapshot,
                spool=self._parts,
                saved_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            )
        )
        self.saved_frames.append(pending.frame)
        log.info("job %s: saved a checkpoint at frame %d", self.job_id, pending.frame)
        if self.on_saved is not None:
            self.on_saved(pending.frame)
