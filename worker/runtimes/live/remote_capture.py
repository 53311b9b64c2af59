"""The capture side of a remote live session: the page and the camera here, the tracker there.

A sender thread takes the newest captured frame, JPEG-encodes it and adds it to the frames
stream (trimmed to a few entries). A receiver thread reads the results stream, renders each
result on the frame it belongs to (kept here, by ``seq``, as JPEG) and publishes it to the
page. Latency is measured on this side's clock, capture to rendered overlay. The page's
prompts go to the control stream. Same page API as a local :class:`LiveSession`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import redis

from jobs.redis_keys import live_session_keys
from worker.runtimes.live import remote_wire as wire
from worker.runtimes.live.capture import Capture, CapturedFrame, SourceEnd
from worker.runtimes.live.controls import Command, Controls, command_to_json
from worker.runtimes.live.display import Display
from worker.runtimes.live.recorder import Recorder
from worker.runtimes.live.session import DEFAULT_STALL_TIMEOUT_S, PageSession, Status
from worker.runtimes.live.stats import LiveStats

DEFAULT_RESULT_TIMEOUT_S = 20.0
DEFAULT_FIRST_RESULT_TIMEOUT_S = 120.0
_KEEP_FRAMES = 256  # sent frames kept (as JPEG) to draw their results on
_END_GRACE_S = 3.0
_JOIN_S = 5.0
_POLL_S = 0.1
_BLOCK_MS = 200


class RemoteCaptureSession(PageSession):
    """Streams ``capture`` to session ``session_id`` and shows what the tracker answers.

    ``first_result_timeout``: how long to wait for a tracker to pick the session up (a queue
    worker loading its model); ``result_timeout``: how long results may then stop coming.
    """

    def __init__(
        self,
        capture: Capture,
        client: redis.Redis,
        session_id: str,
        *,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT_S,
        result_timeout: float = DEFAULT_RESULT_TIMEOUT_S,
        first_result_timeout: float = DEFAULT_FIRST_RESULT_TIMEOUT_S,
        recorder: Recorder | None = None,
    ) -> None:
        info = capture.source.info
        self.capture, self.client, self.session_id = capture, client, session_id
        self.frames_key, self.results_key, self.control_key = live_session_keys(session_id)
        self.controls = Controls(info.width, info.height, self._send_command)
        self.display, self.stats, self.recorder = Display(), LiveStats(), recorder
        self.stall_timeout, self.result_timeout = stall_timeout, result_timeout
        self.first_result_timeout = first_result_timeout
        self.saved: list = []
        self._sent: OrderedDict[int, tuple[int, float, bytes]] = OrderedDict()
        self._sent_lock = threading.Lock()
        self._seq = self._answered = self._skipped = 0
        self._last_processing_s = 0.0
        self._notice: str | None = None
        self._status = Status.RUNNING
        self._message = f"waiting for a tracker (session {session_id})"
        self._stop, self._done = threading.Event(), threading.Event()
        self._finish_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._guard(self._send_loop), name="live-send", daemon=True),
            threading.Thread(target=self._guard(self._receive_loop), name="live-recv", daemon=True),
        ]

    def start(self) -> RemoteCaptureSession:
        self.capture.start()
        for thread in self._threads:
            thread.start()
        return self

    def _guard(self, loop: Callable[[], SourceEnd | None]) -> Callable[[], None]:
        def run() -> None:
            try:
                end = loop()
            except redis.RedisError as error:
                end = SourceEnd(f"lost the connection to Redis: {error}", True)
            except Exception as error:  # report, never leave the page waiting
                end = SourceEnd(f"remote session failed: {error!r}", True)
            if not self._stop.is_set():  # else whoever stopped it finishes the session
                self._finish(end)

        return run

    # ----- sending -------------------------------------------------------------------------
    def _send_loop(self) -> SourceEnd | None:
        while not self._stop.is_set():
            frame = self.capture.take(_POLL_S)
            if frame is None:
                end = self.capture.end or self.capture.stalled(self.stall_timeout)
                if end is not None:
                    self._await_last_result()
                    return end
                continue
            self._send_frame(frame)
        return None

    def _await_last_result(self) -> None:
        """After the source's end, give the tracker a moment to answer for the last frame
        (a few seconds, or twice its last frame's processing time if that is longer)."""
        deadline = time.monotonic() + max(_END_GRACE_S, 2.0 * self._last_processing_s)
        while self._answered < self._seq and time.monotonic() < deadline:
            if self._stop.wait(_POLL_S):
                return

    def _send_frame(self, frame: CapturedFrame) -> None:
        jpeg = wire.encode_jpeg(frame.rgb)
        with self._sent_lock:
            self._seq += 1
            seq = self._seq
            self._sent[seq] = (frame.index, frame.captured_at, jpeg)
            while len(self._sent) > _KEEP_FRAMES:
                self._sent.popitem(last=False)
        wire_frame = wire.WireFrame(seq, frame.index, frame.captured_at, jpeg)
        wire.add(self.client, self.frames_key, wire_frame.to_fields(), wire.FRAMES_MAXLEN)

    def _send_command(self, command: Command) -> None:
        fields = wire.control_fields(command_to_json(command))
        wire.add(self.client, self.control_key, fields, wire.CONTROL_MAXLEN)

    # ----- receiving -----------------------------------------------------------------------
    def _receive_loop(self) -> SourceEnd | None:
        last_id, last_result_at, received = b"0-0", time.monotonic(), 0
        while not self._stop.is_set():
            replies = self.client.xread({self.results_key: last_id}, count=100, block=_BLOCK_MS)
            entries = [entry for _, stream in replies for entry in stream]
            for _, fields in entries:
                end = self._on_result(fields)
                if end is not None:
                    return end
                received += 1
            if entries:
                last_id, last_result_at = entries[-1][0], time.monotonic()
            end = self._result_timeout(time.monotonic() - last_result_at, received)
            if end is not None:
                return end
        return None

    def _result_timeout(self, silent: float, received: int) -> SourceEnd | None:
        limit = self.result_timeout if received else self.first_result_timeout
        if silent <= limit:
            return None
        if received:
            return SourceEnd(f"the remote tracker stopped answering ({silent:.0f} s)", True)
        return SourceEnd(
            f"no remote tracker took session {self.session_id} within {limit:g} s "
            "(is a worker serving the live queue?)",
            True,
        )

    def _on_result(self, fields: dict[bytes, bytes]) -> SourceEnd | None:
        if b"error" in fields:
            return SourceEnd(f"remote tracker: {fields[b'error'].decode()}", True)
        if b"end" in fields:
            return SourceEnd(f"remote tracker ended: {fields[b'end'].decode()}", True)
        result = wire.WireResult.from_fields(fields)
        with self._sent_lock:
            sent = self._sent.get(result.seq)
        self._skipped = result.skipped
        self._notice = result.notice
        self._answered = max(self._answered, result.seq)
        self._last_processing_s = result.processing_ms / 1000.0
        if sent is None:
            return None  # its frame is no longer kept here: too late to show anyway
        self._message = f"tracking remotely (session {self.session_id})"
        index, captured_at, jpeg = sent
        rgb = wire.decode_jpeg(jpeg)
        shown = self.display.publish(index, captured_at, rgb, result.objects)
        self.stats.record_frame(captured_at, shown.rendered_at, result.processing_ms / 1000.0)
        if self.recorder is not None:
            self.recorder.add(CapturedFrame(index, rgb, captured_at), result.objects)
        return None

    # ----- ending --------------------------------------------------------------------------
    def _finish(self, end: SourceEnd | None) -> None:
        with self._finish_lock:
            if self._done.is_set():
                return
            self._stop.set()
            for thread in self._threads:  # the receiver may be drawing or recording a result
                if thread is not threading.current_thread() and thread.is_alive():
                    thread.join(_JOIN_S)
            self.capture.close()
            self._end_remote()
            self._record_end(end)

    def _end_remote(self) -> None:
        try:
            fields = wire.control_fields(wire.END_COMMAND)
            wire.add(self.client, self.control_key, fields, wire.CONTROL_MAXLEN)
            self.client.delete(self.frames_key)
        except redis.RedisError:
            pass  # the tracker side stops by itself when frames stop coming

    # ----- page API (the rest is PageSession's) ----------------------------------------------
    def _prompt_state(self) -> tuple[str | None, int | None, bool]:
        return self._notice, None, False

    def _skipped_frames(self) -> int:
        return self._skipped

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        self._finish(None)
