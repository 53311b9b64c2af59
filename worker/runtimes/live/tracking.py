"""A live session's tracker, prompts applied on the frame the user clicked on.

The page shows frames some time after the tracker processed them, so a click is usually on a
frame the tracker has moved past. :class:`LiveTracking` keeps the last ``history`` processed
frames with the tracker's state before each (``snapshot()``); a prompt for such a frame
rewinds the tracker to it, applies the prompt there and replays the kept frames to catch up
(bounded: at most ``history`` steps). A prompt for a frame older than the kept ones lands on
the oldest kept frame; one for a frame not processed yet (dropped, or not captured yet) lands
on the next processed frame at or after it.

Frames leave the history in order with their final masks (``on_final``): a recording made
from them shows each prompt from the frame it was given on. A prompt the tracker rejects
(``InputError``) is undone: the tracker goes back to where it was, every object keeps its
mask on that frame, and ``notice``/``rejected`` say why and for which object.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from configs.errors import InputError
from jobs.prompts import Prompt
from worker.engines.contract import ObjectResult, RewindableTracker
from worker.runtimes.live.capture import CapturedFrame
from worker.runtimes.live.controls import (
    Command,
    PromptCommand,
    RemoveCommand,
    ResetCommand,
    anchored,
    merge_prompts,
)

DEFAULT_HISTORY = 8


@dataclass(eq=False)
class _Kept:
    """A processed frame: the tracker's state before it (None: no tracker yet), its masks."""

    frame: CapturedFrame
    before: bytes | None
    objects: list[ObjectResult] = field(default_factory=list)

    def masks(self) -> dict[int, np.ndarray]:
        return {o.obj_id: o.mask for o in self.objects if o.visible}


class PromptQueue:
    """Commands queued from any thread (the page's), taken by the tracking loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Command] = []

    def submit(self, command: Command) -> None:
        with self._lock:
            self._queue.append(command)

    def take(self) -> list[Command]:
        with self._lock:
            queue, self._queue = self._queue, []
            return queue

    @property
    def pending(self) -> bool:
        return bool(self._queue)


class LiveTracking:
    """``process(frame)`` once per frame: masks of every object on it (rewinding for prompts
    given on earlier frames). ``on_final(frame, objects)``: called as frames become final."""

    def __init__(
        self,
        make_tracker: Callable[[], RewindableTracker],
        *,
        history: int = DEFAULT_HISTORY,
        on_final: Callable[[CapturedFrame, list[ObjectResult]], None] | None = None,
        on_rejected: Callable[[int], None] | None = None,
    ) -> None:
        self.queue = PromptQueue()
        self.tracker: RewindableTracker | None = None
        self.notice: str | None = None
        self.rejected: int | None = None
        self.working = False  # prompts being applied right now
        self.rewinds: list[int] = []  # frames stepped back for each rewinding prompt (bounded)
        self._make_tracker = make_tracker
        self._history = history
        self._kept: deque[_Kept] = deque()
        self._objects: set[int] = set()
        self._on_final = on_final
        self._on_rejected = on_rejected

    @property
    def busy(self) -> bool:
        """Prompts are queued or being applied: the page says it is working."""
        return self.working or self.queue.pending

    def process(self, frame: CapturedFrame) -> list[ObjectResult]:
        """Every object's mask on ``frame`` (``rgb``: (H, W, 3) uint8); no model run while no
        object exists."""
        self.working = True  # before taking them: ``busy`` never blinks off in between
        commands = self.queue.take()
        self.working = bool(commands)
        try:
            now = self._apply(commands, frame.index)
            return self._step_current(frame, now)
        finally:
            self.working = False

    def flush(self) -> None:
        """Every kept frame is final now (the session ends)."""
        while self._kept:
            self._finalize(self._kept.popleft())

    # ----- commands ------------------------------------------------------------------------
    def _apply(self, commands: list[Command], index: int) -> dict[int, PromptCommand]:
        """Apply removes, resets and rewinding prompts; the prompts for ``index`` are returned."""
        now: dict[int, PromptCommand] = {}
        earlier: dict[tuple[int, int], PromptCommand] = {}
        for command in commands:
            if isinstance(command, ResetCommand | RemoveCommand):
                self._apply_earlier(earlier)  # in the order given
                earlier.clear()
                self._forget(command, now)
                continue
            position = self._position(command.frame, index)
            if position is None:
                now[command.obj_id] = merge_prompts(now.get(command.obj_id), command)
            else:
                key = (position, command.obj_id)
                earlier[key] = merge_prompts(earlier.get(key), command)
        self._apply_earlier(earlier)
        return now

    def _forget(self, command: ResetCommand | RemoveCommand, now: dict) -> None:
        self.flush()  # no rewinding past a reset or a removal: it would bring objects back
        if isinstance(command, ResetCommand):
            now.clear()
            self._objects.clear()
            self.tracker = None
            return
        now.pop(command.obj_id, None)
        self._objects.discard(command.obj_id)
        if self.tracker is not None:
            self.tracker.remove_object(command.obj_id)
        if not self._objects:
            self.tracker = None

    def _position(self, frame: int | None, index: int) -> int | None:
        """Where in the kept frames a prompt for capture index ``frame`` goes (None: now)."""
        if frame is None or frame >= index or not self._kept:
            return None
        for position, kept in enumerate(self._kept):
            if kept.frame.index >= frame:
                return position
        return None  # after every kept frame: the next one processed is the closest

    def _apply_earlier(self, prompts: dict[tuple[int, int], PromptCommand]) -> None:
        for (position, _), command in sorted(prompts.items(), key=lambda item: item[0][0]):
            self._rewind(position, command)

    def _rewind(self, position: int, command: PromptCommand) -> None:
        """Apply ``command`` on kept frame ``position`` and replay the frames after it."""
        kept = list(self._kept)
        undo = (self.tracker, self.tracker.snapshot() if self.tracker is not None else None)
        tracker = self._restored(kept[position].before)
        prompt = self._prompt(tracker, command, kept[position].masks())
        replayed: list[_Kept] = []
        try:
            tracker.add_prompt(prompt)
            for item in kept[position:]:
                before = tracker.snapshot()
                replayed.append(_Kept(item.frame, before, self._step(tracker, item.frame.rgb)))
        except InputError as error:
            self.tracker = undo[0]
            if undo[0] is not None:
                undo[0].restore(undo[1])
            self._reject(command.obj_id, error)
            return
        self.tracker = tracker
        self._objects.add(command.obj_id)
        self._kept = deque(kept[:position] + replayed)
        self.rewinds = (self.rewinds + [len(replayed) - 1])[-100:]
        self.notice = self.rejected = None

    def _restored(self, state: bytes | None) -> RewindableTracker:
        if state is None or self.tracker is None:
            tracker = self._make_tracker()
            if state is not None:
                tracker.restore(state)
            return tracker
        self.tracker.restore(state)
        return self.tracker

    # ----- the current frame ---------------------------------------------------------------
    def _step_current(
        self, frame: CapturedFrame, prompts: dict[int, PromptCommand]
    ) -> list[ObjectResult]:
        masks = self._kept[-1].masks() if self._kept else {}
        if prompts and self.tracker is None:
            self.tracker = self._make_tracker()
        before = self.tracker.snapshot() if self.tracker is not None else None
        objects: list[ObjectResult] = []
        if prompts:
            objects = self._step_prompted(frame, prompts, masks, before)
        elif self.tracker is not None:
            objects = self._step(self.tracker, frame.rgb)
        self._keep(_Kept(frame, before, objects))
        return objects

    def _step_prompted(
        self,
        frame: CapturedFrame,
        prompts: dict[int, PromptCommand],
        masks: dict[int, np.ndarray],
        before: bytes | None,
    ) -> list[ObjectResult]:
        tracker = self.tracker
        try:
            for command in prompts.values():
                tracker.add_prompt(self._prompt(tracker, command, masks))
            objects = self._step(tracker, frame.rgb)
        except InputError as error:
            for obj_id in prompts:
                self._reject(obj_id, error)
            if before is None or not self._objects:
                self.tracker = None
                return []
            tracker.restore(before)  # as if the prompts never came: the others keep going
            return self._step(tracker, frame.rgb)
        self._objects.update(prompts)
        self.notice = self.rejected = None
        return objects

    def _prompt(
        self, tracker: RewindableTracker, command: PromptCommand, masks: dict[int, np.ndarray]
    ) -> Prompt:
        command = anchored(command, masks.get(command.obj_id))
        return Prompt(
            command.obj_id, tracker.frame_idx, command.points, command.labels, command.box
        )

    def _step(self, tracker: RewindableTracker, rgb: np.ndarray) -> list[ObjectResult]:
        result = tracker.step(rgb)
        return list(result.objects.values())

    def _reject(self, obj_id: int, error: InputError) -> None:
        self.notice = f"prompt for object {obj_id} rejected: {error}"
        self.rejected = obj_id
        if obj_id not in self._objects and self._on_rejected is not None:
            self._on_rejected(obj_id)

    # ----- kept frames ---------------------------------------------------------------------
    def _keep(self, kept: _Kept) -> None:
        self._kept.append(kept)
        while len(self._kept) > self._history:
            self._finalize(self._kept.popleft())

    def _finalize(self, kept: _Kept) -> None:
        if self._on_final is not None:
            self._on_final(kept.frame, kept.objects)
