"""The tracker side of a remote live session: newest frame from Redis -> tracker -> result.

It always reads the newest frame of the frames stream: older ones are skipped, counted, and
trimmed away at once (the capture side's ``MAXLEN ~`` bounds the stream while no tracker reads
it), so nothing stale piles up or is ever processed. It applies the control
stream's prompts before each frame, and answers on the results stream. It stops when the
capture side says ``end``, or when no frame has come for ``idle_timeout_s`` (the capture side
went away): a queue worker is never held by a dead session.

``run_remote_session_job`` is the rq job (queue ``jobs.redis_keys.LIVE_QUEUE``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import redis

from configs.errors import StreamsegError
from configs.settings import TrackerSettings, load_settings
from jobs.redis_keys import live_session_keys
from worker.engines.contract import RewindableTracker
from worker.runtimes.live import remote_wire as wire
from worker.runtimes.live.capture import CapturedFrame
from worker.runtimes.live.controls import command_from_json
from worker.runtimes.live.tracking import LiveTracking

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT_S = 30.0
_BLOCK_MS = 200


@dataclass(frozen=True)
class RemoteModel:
    """The model flags of the capture side's command, resolved on the tracker's machine (its
    own cache folder and devices; ``checkpoint`` is a path there)."""

    model: str = "auto"
    checkpoint: str | None = None
    image_size: int | None = None
    device: str | None = None
    offload_memory: bool = False

    def settings(self) -> TrackerSettings:
        base = load_settings().tracker
        checkpoint = Path(self.checkpoint) if self.checkpoint else None
        return replace(
            base,
            model=self.model,
            checkpoint=checkpoint,
            image_size=self.image_size,
            device=self.device,
            offload_memory_to_cpu=self.offload_memory or base.offload_memory_to_cpu,
        )


@dataclass(frozen=True)
class RemoteSessionSpec:
    """What a queue worker needs to serve session ``session_id``."""

    session_id: str
    redis_url: str
    model: RemoteModel = RemoteModel()
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S


@dataclass(frozen=True)
class RemoteSummary:
    frames: int
    skipped: int
    reason: str


class RemoteTrackerLoop:
    """Serves one session; ``make_tracker(width, height)`` builds a tracker when needed."""

    def __init__(
        self,
        client: redis.Redis,
        session_id: str,
        make_tracker: Callable[[int, int], RewindableTracker],
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        self.client = client
        self.frames_key, self.results_key, self.control_key = live_session_keys(session_id)
        self.idle_timeout_s = idle_timeout_s
        self._size = (0, 0)
        self.tracking = LiveTracking(lambda: make_tracker(*self._size))
        self._frame_id, self._control_id = b"0-0", b"0-0"
        self._last_seq = 0
        self.processed = self.skipped = 0

    def run(self) -> RemoteSummary:
        try:
            reason = self._loop()
        except StreamsegError as error:
            self._publish({"error": str(error)})
            raise
        except Exception as error:
            self._publish({"error": f"remote tracker failed: {error!r}"})
            raise
        self._publish({"end": reason})
        return RemoteSummary(self.processed, self.skipped, reason)

    def _loop(self) -> str:
        last_frame_at = time.monotonic()
        while True:
            if self._drain_control():
                return "the capture side ended the session"
            entry = self._newest_frame()
            if entry is None:
                if time.monotonic() - last_frame_at > self.idle_timeout_s:
                    return f"no frame from the capture side for {self.idle_timeout_s:g} s"
                continue
            last_frame_at = time.monotonic()
            self._process(entry)

    def _process(self, frame: wire.WireFrame) -> None:
        started = time.perf_counter()
        rgb = frame.rgb()
        self._size = (rgb.shape[1], rgb.shape[0])
        objects = self.tracking.process(CapturedFrame(frame.index, rgb, frame.captured_at))
        self.skipped += max(frame.seq - self._last_seq - 1, 0)
        self._last_seq = frame.seq
        self.processed += 1
        ms = (time.perf_counter() - started) * 1000.0
        result = wire.WireResult(
            frame.seq, frame.index, frame.captured_at, ms, self.skipped, objects,
            self.tracking.notice,
        )  # fmt: skip
        self._publish(result.to_fields(rgb.shape[0], rgb.shape[1]))

    def _newest_frame(self) -> wire.WireFrame | None:
        """The newest frame after the last one processed; waits up to ``_BLOCK_MS``."""
        newest = self.client.xrevrange(self.frames_key, count=1)
        if not newest or wire.stream_id(newest[0][0]) <= wire.stream_id(self._frame_id):
            if not self.client.xread({self.frames_key: self._frame_id}, count=1, block=_BLOCK_MS):
                return None
            newest = self.client.xrevrange(self.frames_key, count=1)
        entry_id, fields = newest[0]
        self._frame_id = entry_id
        self.client.xtrim(self.frames_key, minid=entry_id, approximate=False)  # stale: gone
        return wire.WireFrame.from_fields(fields)

    def _drain_control(self) -> bool:
        """Queue every new command; True when the capture side asked to end."""
        replies = self.client.xread({self.control_key: self._control_id}, count=1000)
        for _, entries in replies:
            for entry_id, fields in entries:
                self._control_id = entry_id
                command = wire.control_from_fields(fields)
                if command.get("type") == wire.END_COMMAND["type"]:
                    return True
                self.tracking.queue.submit(command_from_json(command))
        return False

    def _publish(self, fields: dict) -> None:
        wire.add(self.client, self.results_key, fields, wire.RESULTS_MAXLEN)


def run_remote_session_job(spec: RemoteSessionSpec) -> RemoteSummary:
    """The rq job: load the model (cached per worker process) and serve the session."""
    from jobs.media import VideoInfo
    from worker.engines.registry import load_engine

    client = wire.connect(spec.redis_url)
    engine = load_engine(spec.model.settings(), show_progress=False)

    def make_tracker(width: int, height: int) -> RewindableTracker:
        info = VideoInfo(width, height, 30.0, None, None, 0, f"live session {spec.session_id}")
        return engine.make_tracker(info)

    log.info("serving live session %s with %s", spec.session_id, engine.name)
    loop = RemoteTrackerLoop(client, spec.session_id, make_tracker, spec.idle_timeout_s)
    return loop.run()
