"""What the page asks for (clicks, boxes, new/remove object, reset) and how it reaches a tracker.

:class:`Controls` faces the page: it checks coordinates, gives new objects their ids and hands
each :data:`Command` to a sink (the local tracking loop's queue, ``tracking.PromptQueue``, or
a Redis stream for a remote tracker), which applies it on the frame the user clicked on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from configs.errors import InputError
from jobs.prompts import Box, Point, Prompt, validate_prompts

if TYPE_CHECKING:
    pass


MAX_OBJECTS = 16  # objects tracked at once: each one costs a mask decode per frame
MAX_OBJECT_ID = 1 << 31  # ids stay exact integers in JavaScript and in every wire format


@dataclass(frozen=True)
class PromptCommand:
    """Points (label 1 positive, 0 negative) and/or a box for one object; ``frame``: the
    capture index of the frame the user gave it on (None: the next frame processed)."""

    obj_id: int
    points: tuple[Point, ...] = ()
    labels: tuple[int, ...] = ()
    box: Box | None = None
    frame: int | None = None


@dataclass(frozen=True)
class RemoveCommand:
    obj_id: int


@dataclass(frozen=True)
class ResetCommand:
    """Forget every object."""


Command = PromptCommand | RemoveCommand | ResetCommand


def command_to_json(command: Command) -> dict:
    if isinstance(command, PromptCommand):
        points = [list(p) for p in command.points]
        box = list(command.box) if command.box else None
        return {
            "type": "prompt",
            "obj": command.obj_id,
            "points": points,
            "labels": list(command.labels),
            "box": box,
            "frame": command.frame,
        }
    if isinstance(command, RemoveCommand):
        return {"type": "remove", "obj": command.obj_id}
    return {"type": "reset"}


def command_from_json(data: dict) -> Command:
    kind = data.get("type")
    if kind == "prompt":
        box = tuple(float(v) for v in data["box"]) if data.get("box") else None
        return PromptCommand(
            int(data["obj"]),
            tuple((float(x), float(y)) for x, y in data.get("points", ())),
            tuple(int(label) for label in data.get("labels", ())),
            box,
            None if data.get("frame") is None else int(data["frame"]),
        )
    if kind == "remove":
        return RemoveCommand(int(data["obj"]))
    if kind == "reset":
        return ResetCommand()
    raise InputError(f"unknown live command {kind!r}")


class Controls:
    """The page's actions, checked against the frame size, forwarded to ``sink``."""

    def __init__(self, width: int, height: int, sink: Callable[[Command], None]) -> None:
        self.width, self.height = width, height
        self._sink = sink
        self._lock = threading.Lock()
        self._next_id = 1
        self._objects: set[int] = set()

    @property
    def objects(self) -> list[int]:
        """Objects that have been given a prompt and not removed since."""
        with self._lock:
            return sorted(self._objects)

    def new_object(self) -> int:
        """A fresh id (ids are never reused: a recording never mixes two objects)."""
        with self._lock:
            return self._allocate()

    def click(
        self,
        obj_id: int | None,
        x: float,
        y: float,
        positive: bool = True,
        *,
        frame: int | None = None,
    ) -> int:
        point = (float(x), float(y))
        command = PromptCommand(0, (point,), (1 if positive else 0,), frame=frame)
        return self._prompt(command, obj_id)

    def box(self, obj_id: int | None, box: Box, *, frame: int | None = None) -> int:
        x0, y0, x1, y1 = (float(v) for v in box)
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        return self._prompt(PromptCommand(0, box=box, frame=frame), obj_id)

    def _prompt(self, command: PromptCommand, obj_id: int | None) -> int:
        probe = Prompt(1, 0, command.points, command.labels, command.box)
        validate_prompts([probe], self.width, self.height)
        with self._lock:
            if obj_id is None:
                obj_id = self._allocate()
            elif not 1 <= obj_id < self._next_id:
                raise InputError(f"no object {str(obj_id)[:24]}: ask for a new object first")
            if obj_id not in self._objects and len(self._objects) >= MAX_OBJECTS:
                raise InputError(f"at most {MAX_OBJECTS} objects at once: remove one first")
            self._objects.add(obj_id)
        self._sink(replace(command, obj_id=obj_id))
        return obj_id

    def _allocate(self) -> int:
        if self._next_id > MAX_OBJECT_ID:
            raise InputError("no object ids left in this session")
        if len(self._objects) >= MAX_OBJECTS:
            raise InputError(f"at most {MAX_OBJECTS} objects at once: remove one first")
        obj_id, self._next_id = self._next_id, self._next_id + 1
        return obj_id

    def forget(self, obj_id: int) -> None:
        """The tracker rejected ``obj_id``'s only prompts: it is no object (no phantom)."""
        with self._lock:
            self._objects.discard(obj_id)

    def remove(self, obj_id: int) -> None:
        with self._lock:
            if obj_id not in self._objects:
                raise InputError(f"no object {obj_id} to remove")
            self._objects.discard(obj_id)
        self._sink(RemoveCommand(obj_id))

    def reset(self) -> None:
        with self._lock:
            self._objects.clear()  # ids are not reused: a recording never mixes two objects
        self._sink(ResetCommand())


def anchored(command: PromptCommand, mask: np.ndarray | None) -> PromptCommand:
    """A click that only says "not this" about a tracked object also says "but still that":
    a positive point at the most interior pixel of its current mask, away from the negative
    clicks. Every tracker then refines instead of starting over (or rejecting the prompt)."""
    if command.box is not None or any(command.labels) or mask is None or not mask.any():
        return command
    keep = mask.astype(np.uint8)
    radius = max(4, round(0.05 * max(mask.shape)))
    for x, y in command.points:
        cv2.circle(keep, (round(x), round(y)), radius, 0, thickness=-1)
    if not keep.any():
        return command
    distance = cv2.distanceTransform(keep, cv2.DIST_L2, 3)
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return replace(
        command, points=((float(x), float(y)), *command.points), labels=(1, *command.labels)
    )


def merge_prompts(old: PromptCommand | None, new: PromptCommand) -> PromptCommand:
    """Clicks given between two frames accumulate; a later box replaces an earlier one."""
    if old is None:
        return new
    return replace(
        new, points=old.points + new.points, labels=old.labels + new.labels, box=new.box or old.box
    )
