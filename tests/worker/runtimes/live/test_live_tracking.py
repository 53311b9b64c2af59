"""Prompts land on the frame the user clicked on: the tracker rewinds to it (kept frames and
tracker states, bounded), applies the prompt there and catches up. Frames become final (and
are recorded) in order, with the prompt's mask from the clicked frame on."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from jobs.prompts import Prompt
from tests.worker.runtimes.live.live_support import SlowTracker
from worker.runtimes.live.capture import CapturedFrame
from worker.runtimes.live.controls import PromptCommand, RemoveCommand
from worker.runtimes.live.sources import synthetic_disc, synthetic_frame
from worker.runtimes.live.tracking import LiveTracking

WIDTH, HEIGHT = 320, 240
STRIDE = 4  # only every 4th captured frame is processed (the others were dropped)


def _frames(start: int, stop: int) -> list[CapturedFrame]:
    return [
        CapturedFrame(i, synthetic_frame(i, WIDTH, HEIGHT), float(i))
        for i in range(start, stop, STRIDE)
    ]


def _run(tracking: LiveTracking, frames: list[CapturedFrame]) -> None:
    for frame in frames:
        tracking.process(frame)


class _Final:
    """What ``on_final`` received: capture index -> {object id: mask}."""

    def __init__(self) -> None:
        self.frames: dict[int, dict[int, np.ndarray]] = {}

    def __call__(self, frame: CapturedFrame, objects) -> None:
        assert frame.index not in self.frames and all(frame.index > i for i in self.frames)
        self.frames[frame.index] = {o.obj_id: o.mask for o in objects if o.visible}

    def first_with(self, obj_id: int) -> int | None:
        return next((i for i, objects in self.frames.items() if obj_id in objects), None)


@pytest.mark.parametrize(
    ("clicked", "applied"),
    [
        (24, 24),  # a processed frame the tracker has moved past: rewound to it
        (25, 28),  # a dropped frame: the next processed one
        (36, 36),  # the newest processed frame
        (0, 8),  # older than the kept frames: the oldest kept one
        (None, 40),  # no frame given: the next frame
        (1000, 40),  # a frame not captured yet: the next frame
    ],
)
def test_a_prompt_lands_on_the_frame_it_was_given_on(clicked, applied) -> None:
    final = _Final()
    tracking = LiveTracking(lambda: SlowTracker(0.0), history=8, on_final=final)
    _run(tracking, _frames(0, 40))  # processed 0, 4, ..., 36; kept 8..36
    tracking.queue.submit(PromptCommand(1, ((50.0, 60.0),), (1,), frame=clicked))
    _run(tracking, _frames(40, 80))
    tracking.flush()
    assert list(final.frames) == list(range(0, 80, STRIDE))  # every frame once, in order
    assert final.first_with(1) == applied
    assert all(1 in final.frames[i] for i in range(applied, 80, STRIDE))
    assert max(tracking.rewinds, default=0) <= 8  # catching up is bounded by what is kept


def test_a_removal_is_not_undone_by_a_later_rewind() -> None:
    final = _Final()
    tracking = LiveTracking(lambda: SlowTracker(0.0), history=8, on_final=final)
    tracking.queue.submit(PromptCommand(1, ((50.0, 60.0),), (1,)))
    _run(tracking, _frames(0, 20))
    tracking.queue.submit(RemoveCommand(1))
    tracking.queue.submit(PromptCommand(2, ((80.0, 60.0),), (1,), frame=8))  # before removal
    _run(tracking, _frames(20, 40))
    tracking.flush()
    assert all(1 not in final.frames[i] for i in range(20, 40, STRIDE))
    assert final.first_with(2) == 20  # the removal made those frames final: the next one


@cache
def _lite_engine():
    from configs.settings import TrackerSettings
    from worker.engines.registry import load_engine

    return load_engine(TrackerSettings(model="lite", device="cpu"), show_progress=False)


def _iou(mask: np.ndarray, index: int) -> float:
    disc = synthetic_disc(index, WIDTH, HEIGHT).mask(WIDTH, HEIGHT)
    return float((mask & disc).sum() / max((mask | disc).sum(), 1))


def test_a_click_on_a_moving_object_masks_it_from_the_frame_clicked_on() -> None:
    """The lite engine (a trained model): the disc moves 8 px per processed frame, so by the
    time the tracker is 7 frames further the click's point is off the disc; applied on the
    frame clicked, the mask is on the disc there and follows it."""
    from jobs.media import VideoInfo

    engine = _lite_engine()
    info = VideoInfo(WIDTH, HEIGHT, 30, None, None, 0, "synthetic")
    final = _Final()
    tracking = LiveTracking(lambda: engine.make_tracker(info), history=8, on_final=final)
    _run(tracking, _frames(0, 44))  # processed 0..40
    disc = synthetic_disc(12, WIDTH, HEIGHT)
    assert np.hypot(synthetic_disc(44, WIDTH, HEIGHT).x - disc.x, 0) > disc.radius
    tracking.queue.submit(PromptCommand(1, ((disc.x, disc.y),), (1,), frame=12))
    _run(tracking, _frames(44, 80))
    tracking.flush()
    assert final.first_with(1) == 12
    ious = [_iou(final.frames[i][1], i) for i in range(12, 80, STRIDE) if 1 in final.frames[i]]
    print(f"\nIoU with the disc from the clicked frame on: min {min(ious):.2f}")
    assert len(ious) == len(range(12, 80, STRIDE)) and min(ious) >= 0.7


def _direct(make_tracker, frames, prompts: dict[int, PromptCommand]):
    """A fresh tracker given each prompt on its frame directly: masks per frame index."""
    tracker, out = make_tracker(), {}
    for frame in frames:
        if frame.index in prompts:
            command = prompts[frame.index]
            tracker.add_prompt(
                Prompt(command.obj_id, tracker.frame_idx, command.points, command.labels)
            )
        result = tracker.step(frame.rgb)
        out[frame.index] = {o.obj_id: o.mask for o in result.objects.values() if o.score > 0}
    return out


@pytest.mark.parametrize("engine", ["sam2", "lite"])
def test_rewinding_gives_what_prompting_that_frame_directly_gives(engine, request) -> None:
    """Rewind + replay restores the tracker's own snapshots: the masks are the ones a tracker
    given the prompt on that frame from the start computes (SAM 2 and lite)."""
    from jobs.media import VideoInfo

    info = VideoInfo(WIDTH, HEIGHT, 30, None, None, 0, "synthetic")
    if engine == "sam2":
        from worker.engines.sam2video.tracker import StreamingTracker

        loaded = request.getfixturevalue("loaded_model")

        def make_tracker():
            return StreamingTracker(loaded)
    else:

        def make_tracker():
            return _lite_engine().make_tracker(info)

    frames = _frames(0, 40)  # 0, 4, ..., 36
    first = synthetic_disc(0, WIDTH, HEIGHT)
    later = synthetic_disc(12, WIDTH, HEIGHT)
    one = PromptCommand(1, ((first.x, first.y),), (1,))
    two = PromptCommand(2, ((later.x + 30, later.y - 60),), (1,), frame=12)
    final = _Final()
    tracking = LiveTracking(make_tracker, history=8, on_final=final)
    tracking.queue.submit(one)
    _run(tracking, frames[:6])  # processed 0..20; the second prompt is for frame 12
    tracking.queue.submit(two)
    _run(tracking, frames[6:])
    tracking.flush()
    expected = _direct(make_tracker, frames, {0: one, 12: two})
    assert final.first_with(2) == 12
    for index, masks in expected.items():
        got = final.frames[index]
        assert sorted(got) == sorted(masks), index
        for obj_id, mask in masks.items():
            assert np.array_equal(got[obj_id], mask), (index, obj_id)
