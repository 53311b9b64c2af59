"""jobs.mask_codec (RLE, boxes), and jobs.tracks: the streaming TracksWriter, crash-resume and
read_tracks."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from configs.errors import InputError
from jobs.mask_codec import mask_bbox, mask_to_rle, rle_to_mask
from jobs.media import ModelInfo, VideoInfo
from jobs.tracks import (
    SpoolState,
    Tracks,
    TracksWriter,
    read_tracks,
    spool_path_for,
    spool_state,
)

# pycocotools' own numpy-2 notice when these tests call mask_utils.decode directly
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SMALL = VideoInfo(width=64, height=40, fps=25.0, num_frames=None)
MODEL = ModelInfo(
    name="sam2.1-tiny", checkpoint="sam2.1_hiera_tiny.pt", image_size=256, device="cpu"
)


def box_mask(frame: int, obj_id: int, video: VideoInfo = SMALL) -> np.ndarray:
    """A deterministic (H, W) bool box that moves with the frame and differs per object."""
    mask = np.zeros((video.height, video.width), bool)
    top, left = (3 * obj_id) % (video.height - 8), (frame + 5 * obj_id) % (video.width - 10)
    mask[top : top + 2 + obj_id % 5, left : left + 3 + frame % 7] = True
    return mask


def score_of(frame: int, obj_id: int) -> float:
    return round(obj_id - frame / 8, 6)


# --- RLE and boxes -------------------------------------------------------------------------


def _davis_mask(davis_root: Path) -> np.ndarray:
    return np.asarray(Image.open(davis_root / "Annotations" / "bear" / "00077.png"))[..., 0] > 0


def _random_mask() -> np.ndarray:
    return np.random.default_rng(1).random((37, 53)) > 0.6


MASKS = {
    "empty": lambda root: np.zeros((5, 7), bool),
    "full": lambda root: np.ones((5, 7), bool),
    "one pixel in a corner": lambda root: np.eye(1, 35, 34, dtype=bool).reshape(5, 7),
    "random noise, odd size": lambda root: _random_mask(),
    "davis bear 00077 (LA)": _davis_mask,
}


@pytest.mark.parametrize("case", list(MASKS))
def test_rle_round_trip_and_pycocotools(davis_root: Path, case: str) -> None:
    mask = MASKS[case](davis_root)
    rle = mask_to_rle(mask)
    assert rle["size"] == list(mask.shape) and isinstance(rle["counts"], str)
    json.dumps(rle)
    decoded = mask_utils.decode(rle)
    assert decoded.shape == mask.shape
    np.testing.assert_array_equal(decoded.astype(bool), mask)
    np.testing.assert_array_equal(rle_to_mask(rle), mask)
    assert rle_to_mask(rle).dtype == bool and rle_to_mask(rle).flags.c_contiguous
    assert mask_utils.area(rle) == mask.sum()
    expected_box = [int(v) for v in mask_utils.toBbox(rle)] if mask.any() else [0, 0, 0, 0]
    assert mask_bbox(mask) == expected_box


def test_rle_to_mask_reads_bytes_and_uncompressed_counts() -> None:
    mask = _random_mask()
    rle = mask_to_rle(mask)
    np.testing.assert_array_equal(rle_to_mask({**rle, "counts": rle["counts"].encode()}), mask)
    column_major = mask.flatten(order="F").astype(int)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, column_major, 1 - column_major[-1]])))
    counts = [int(np.flatnonzero(column_major)[0])] + runs.tolist()
    np.testing.assert_array_equal(rle_to_mask({"size": rle["size"], "counts": counts}), mask)


@pytest.mark.parametrize("bad", [
    {"counts": "PP"}, {"size": [2, 2]}, {"size": "ab", "counts": "0"},
    {"size": [2, 2], "counts": 5}, {"size": [2, 2], "counts": "é"},
])  # fmt: skip
def test_rle_to_mask_refuses_a_malformed_rle(bad: dict) -> None:
    with pytest.raises(InputError, match=r"^invalid COCO RLE mask: "):
        rle_to_mask(bad)


@pytest.mark.parametrize(("rows", "cols", "expected"), [
    (slice(3, 4), slice(5, 6), [5, 3, 1, 1]),
    (slice(0, 40), slice(0, 64), [0, 0, 64, 40]),
    (slice(10, 13), slice(60, 64), [60, 10, 4, 3]),
])  # fmt: skip
def test_mask_bbox(rows: slice, cols: slice, expected: list[int]) -> None:
    mask = np.zeros((40, 64), bool)
    mask[rows, cols] = True
    assert mask_bbox(mask) == expected


@pytest.mark.parametrize("bad", [
    np.zeros((4, 4), np.uint8), np.zeros((4, 4, 1), bool), np.zeros(4, bool), [[True]],
])  # fmt: skip
def test_masks_must_be_2d_bool(bad) -> None:
    with pytest.raises(TypeError, match="2-D bool array"):
        mask_to_rle(bad)
    with pytest.raises(TypeError, match="2-D bool array"):
        mask_bbox(bad)


# --- writing -------------------------------------------------------------------------------


def write_boxes(writer: TracksWriter, frames: range, first_frame: dict[int, int]) -> None:
    """Objects (ids in ``first_frame``) from their first frame on; object 2 absent on frame 3."""
    for frame in frames:
        for obj_id in sorted(first_frame, reverse=frame % 2 == 1):  # object order varies
            if frame >= first_frame[obj_id]:
                visible = not (obj_id == 2 and frame == 3)
                writer.add(frame, obj_id, box_mask(frame, obj_id), score_of(frame, obj_id), visible)


def test_tracks_json_contract(tmp_path: Path) -> None:
    path = tmp_path / "tracks.json"
    with TracksWriter(path, SMALL, MODEL) as writer:
        write_boxes(writer, range(6), {2: 0, 1: 2})
        assert not path.exists()
        assert writer.state() == SpoolState(records=10, objects=2, last_frame=5)
        assert writer.finish(num_frames=8) == path
    assert sorted(os.listdir(tmp_path)) == ["tracks.json"]
    document = json.loads(path.read_text())
    assert list(document) == ["video", "model", "objects"]
    assert document["video"] == {"width": 64, "height": 40, "fps": 25.0, "num_frames": 8}
    assert document["model"] == MODEL.to_json()
    assert [o["id"] for o in document["objects"]] == [1, 2]
    assert [e["frame"] for e in document["objects"][0]["frames"]] == [2, 3, 4, 5]
    assert [e["frame"] for e in document["objects"][1]["frames"]] == [0, 1, 2, 3, 4, 5]
    for obj in document["objects"]:
        for entry in obj["frames"]:
            assert list(entry) == ["frame", "rle", "bbox", "score", "visible"]
            mask = mask_utils.decode(entry["rle"]).astype(bool)
            absent = obj["id"] == 2 and entry["frame"] == 3
            expected = np.zeros_like(mask) if absent else box_mask(entry["frame"], obj["id"])
            np.testing.assert_array_equal(mask, expected)
            assert entry["bbox"] == mask_bbox(expected)
            assert entry["visible"] is not absent
            assert entry["score"] == score_of(entry["frame"], obj["id"])
    assert document["objects"][1]["frames"][3]["bbox"] == [0, 0, 0, 0]


def test_read_tracks_and_masks_at(tmp_path: Path) -> None:
    path = tmp_path / "tracks.json"
    with TracksWriter(path, SMALL, MODEL) as writer:
        write_boxes(writer, range(6), {2: 0, 1: 2})
        writer.finish(6)
    tracks = read_tracks(path)
    assert isinstance(tracks, Tracks)
    assert tracks.video == VideoInfo(64, 40, 25.0, 6, source=str(tmp_path))
    assert tracks.model == MODEL
    assert [t.id for t in tracks.objects] == [1, 2]
    assert set(tracks.masks_at(0)) == {2}
    masks = tracks.masks_at(4)
    assert set(masks) == {1, 2}
    np.testing.assert_array_equal(masks[1], box_mask(4, 1))
    assert not tracks.masks_at(3)[2].any()
    assert tracks.objects[1].at(3).visible is False
    assert tracks.masks_at(99) == {}


def test_real_davis_masks_at_source_resolution(davis_root: Path, tmp_path: Path) -> None:
    video = VideoInfo(854, 480, 24.0, 82)
    folder = davis_root / "Annotations" / "bear"
    masks = [np.asarray(Image.open(folder / f"{i:05d}.png").convert("L")) > 0 for i in (0, 77)]
    with TracksWriter(tmp_path / "tracks.json", video, MODEL) as writer:
        writer.add(0, 1, masks[0], 2.5, True)
        writer.add(1, 1, masks[1], -0.75, True)
        writer.finish(82)
    tracks = read_tracks(tmp_path / "tracks.json")
    for frame, mask in enumerate(masks):
        np.testing.assert_array_equal(tracks.masks_at(frame)[1], mask)
    assert tracks.objects[0].frames[1].score == -0.75


def test_more_objects_than_open_files_at_once(tmp_path: Path) -> None:
    first_frame = {obj_id: obj_id % 3 for obj_id in range(1, 71)}
    with TracksWriter(tmp_path / "tracks.json", SMALL, MODEL) as writer:
        write_boxes(writer, range(4), first_frame)
        writer.finish(4)
    tracks = read_tracks(tmp_path / "tracks.json")
    assert [t.id for t in tracks.objects] == list(range(1, 71))
    for track in tracks.objects:
        assert [f.frame for f in track.frames] == list(range(track.id % 3, 4))
        np.testing.assert_array_equal(
            track.frames[-1].mask(), box_mask(3, track.id) & (track.id != 2)
        )


def test_records_go_to_disk_and_memory_stays_flat(tmp_path: Path) -> None:
    """~30 MB of noisy masks pass through with a Python peak far below that."""
    video = VideoInfo(854, 480, 30.0)
    noise = np.random.default_rng(0).random((480, 854)) > 0.5
    path = tmp_path / "tracks.json"
    tracemalloc.start()
    try:
        with TracksWriter(path, video, MODEL) as writer:
            for frame in range(60):
                for obj_id in (1, 2, 3):
                    writer.add(frame, obj_id, noise, 1.0, True)
            spooled = writer.spool_path.stat().st_size
            writer.finish(60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert spooled > 20e6 and path.stat().st_size > 20e6
    assert peak < 3e6, f"peak {peak / 1e6:.1f} MB"


# --- failures leave nothing ----------------------------------------------------------------


def test_exception_in_block_leaves_no_output(tmp_path: Path) -> None:
    path = tmp_path / "tracks.json"
    path.write_text("old result")
    with pytest.raises(KeyError), TracksWriter(path, SMALL, MODEL) as writer:
        write_boxes(writer, range(3), {1: 0})
        assert writer.spool_path.exists()
        raise KeyError("tracker failed")
    assert sorted(os.listdir(tmp_path)) == ["tracks.json"]
    assert path.read_text() == "old result"


def test_no_finish_no_output(tmp_path: Path) -> None:
    with TracksWriter(tmp_path / "tracks.json", SMALL, MODEL) as writer:
        write_boxes(writer, range(3), {1: 0})
    assert os.listdir(tmp_path) == []


def test_keep_spool_survives_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "tracks.json"
    with pytest.raises(RuntimeError), TracksWriter(path, SMALL, MODEL, keep_spool=True) as writer:
        write_boxes(writer, range(3), {1: 0})
        raise RuntimeError("worker lost its GPU")
    assert os.listdir(tmp_path) == ["tracks.json.spool"]
    assert spool_state(path, SMALL) == SpoolState(records=3, objects=1, last_frame=2)


BAD_ADDS = {
    "frame goes back": ((1, 1, box_mask(1, 1), 0.0, True), ValueError, "frames must come in order"),
    "same object twice": ((2, 2, box_mask(2, 2), 0.0, True), ValueError, "added twice"),
    "wrong size": ((2, 1, np.zeros((40, 63), bool), 0.0, True), ValueError, "63x40 but the video"),
    "uint8 mask": ((2, 1, np.zeros((40, 64), np.uint8), 0.0, True), TypeError, "2-D bool"),
    "nan score": ((2, 1, box_mask(2, 1), float("nan"), True), ValueError, "score must be finite"),
    "negative id": ((2, -1, box_mask(2, 1), 0.0, True), ValueError, ">= 0"),
    "float frame": ((2.0, 1, box_mask(2, 1), 0.0, True), TypeError, "integer"),
}


@pytest.mark.parametrize("case", list(BAD_ADDS))
def test_bad_records_are_rejected_and_not_spooled(tmp_path: Path, case: str) -> None:
    arguments, error_type, message = BAD_ADDS[case]
    with TracksWriter(tmp_path / "tracks.json", SMALL, MODEL) as writer:
        write_boxes(writer, range(3), {2: 0})
        with pytest.raises(error_type, match=message):
            writer.add(*arguments)
        writer.add(2, 1, box_mask(2, 1), 0.5, True)  # the writer is still usable
        writer.finish(3)
    tracks = read_tracks(tmp_path / "tracks.json")
    assert [(t.id, len(t.frames)) for t in tracks.objects] == [(1, 1), (2, 3)]


def test_finish_checks_and_closes(tmp_path: Path) -> None:
    with TracksWriter(tmp_path / "tracks.json", SMALL, MODEL) as writer:
        write_boxes(writer, range(5), {1: 0})
        with pytest.raises(ValueError, match="num_frames=4 but frame 4 was added"):
            writer.finish(4)
        writer.finish(5)
        with pytest.raises(RuntimeError, match="closed"):
            writer.add(5, 1, box_mask(5, 1), 0.0, True)
        with pytest.raises(RuntimeError, match="closed"):
            writer.finish(5)


def test_model_block_is_typed_and_foreign_keys_are_ignored(tmp_path: Path) -> None:
    """The writer's ModelInfo comes back equal; another tool's extra keys or wrongly typed
    fields are dropped on reading, not passed on as free-form values."""
    path = tmp_path / "tracks.json"
    with TracksWriter(path, SMALL, MODEL) as writer:
        writer.finish(0)
    document = json.loads(path.read_text())
    assert document["model"] == {
        "name": "sam2.1-tiny",
        "checkpoint": "sam2.1_hiera_tiny.pt",
        "image_size": 256,
        "device": "cpu",
    }
    assert read_tracks(path).model == MODEL
    document["model"].update({"memory": 7, "device": 5, "image_size": True})
    path.write_text(json.dumps(document))
    assert read_tracks(path).model == ModelInfo(
        name="sam2.1-tiny", checkpoint="sam2.1_hiera_tiny.pt"
    )


@pytest.mark.parametrize(
    ("video", "pattern"),
    [
        (VideoInfo(64, 40, math.nan), r"video block .*fps: Input should be a finite number"),
        (VideoInfo(64, 40, -1.0), r"fps: Input should be greater than or equal to 0"),
        (VideoInfo(0, 40, 25.0), r"width: Input should be greater than 0"),
    ],
)
def test_writer_refuses_a_video_block_the_reader_would_refuse(
    tmp_path: Path, video: VideoInfo, pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern):
        TracksWriter(tmp_path / "tracks.json", video, MODEL)
    assert list(tmp_path.iterdir()) == []


# --- crash and resume ----------------------------------------------------------------------

CRASHING_JOB = """
    import os, sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from test_tracks import MODEL, SMALL, box_mask, score_of
    from jobs.tracks import TracksWriter
    writer = TracksWriter({path!r}, SMALL, MODEL)
    for frame in range(10):
        for obj_id in (1, 2):
            writer.add(frame, obj_id, box_mask(frame, obj_id), score_of(frame, obj_id), True)
    writer.add(10, 1, box_mask(10, 1), 0.0, True)  # frame 10 half done
    os._exit(3)  # killed: no __exit__, no buffer flush
"""


def test_resume_after_a_real_crash(tmp_path: Path) -> None:
    path = tmp_path / "tracks.json"
    script = CRASHING_JOB.format(
        root=str(PROJECT_ROOT), tests=str(Path(__file__).parent), path=str(path)
    )
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=False)
    assert result.returncode == 3
    assert not path.exists()
    state = spool_state(path, SMALL)
    assert state.last_frame in (9, 10) and state.records in (20, 21)
    assert state.complete_before == state.last_frame
    with TracksWriter.resume(path, SMALL, MODEL, upto_frame=7) as writer:
        assert writer.state() == SpoolState(records=14, objects=2, last_frame=6)
        for frame in range(7, 12):
            for obj_id in (1, 2):
                writer.add(frame, obj_id, box_mask(frame, obj_id), score_of(frame, obj_id), True)
        writer.finish(12)
    tracks = read_tracks(path)
    for track in tracks.objects:
        assert [f.frame for f in track.frames] == list(range(12))
        for entry in track.frames:
            np.testing.assert_array_equal(entry.mask(), box_mask(entry.frame, track.id))
            assert entry.score == score_of(entry.frame, track.id)
    assert not spool_path_for(path).exists()


def _crashed_spool(path: Path, frames: int, torn: bytes = b"") -> None:
    with pytest.raises(SystemError), TracksWriter(path, SMALL, MODEL, keep_spool=True) as writer:
        write_boxes(writer, range(frames), {1: 0, 2: 1})
        raise SystemError
    with open(spool_path_for(path), "ab") as spool:
        spool.write(torn)


def test_torn_last_line_is_ignored_and_cut(tmp_path: Path) -> None:
    path = tmp_path / "tracks.json"
    _crashed_spool(path, 4, torn=b'4 1 {"frame": 4, "rle": {"size": [40, 6')
    assert spool_state(path, SMALL) == SpoolState(records=7, objects=2, last_frame=3)
    with TracksWriter.resume(path, SMALL, MODEL, upto_frame=3) as writer:
        write_boxes(writer, range(3, 5), {1: 0, 2: 1})
        writer.finish(5)
    frames = {t.id: [f.frame for f in t.frames] for t in read_tracks(path).objects}
    assert frames == {1: [0, 1, 2, 3, 4], 2: [1, 2, 3, 4]}


def test_resume_refuses_to_skip_or_repeat(tmp_path: Path) -> None:
    path = tmp_path / "tracks.json"
    _crashed_spool(path, 5)
    with pytest.raises(
        ValueError, match="cannot resume at frame 5: .* complete only before frame 4"
    ):
        TracksWriter.resume(path, SMALL, MODEL, upto_frame=5)
    with pytest.raises(ValueError, match="not a spool of a 64x41 video"):
        TracksWriter.resume(path, VideoInfo(64, 41, 25.0), MODEL, upto_frame=2)
    with TracksWriter.resume(path, SMALL, MODEL, upto_frame=2) as writer:
        with pytest.raises(ValueError, match="frames must come in order"):
            writer.add(1, 1, box_mask(1, 1), 0.0, True)
    with pytest.raises(FileNotFoundError, match="no spool to resume"):
        TracksWriter.resume(tmp_path / "other.json", SMALL, MODEL, upto_frame=0)
    assert spool_state(tmp_path / "other.json", SMALL) is None


def test_resume_from_zero_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "tracks.json"
    _crashed_spool(path, 3)
    with TracksWriter.resume(path, SMALL, MODEL, upto_frame=0) as writer:
        assert writer.state() == SpoolState(records=0, objects=0, last_frame=None)
        writer.finish(0)
    assert json.loads(path.read_text())["objects"] == []


# --- reading bad files ---------------------------------------------------------------------


def _document(**changes) -> dict:
    """A valid 4x3, 2-frame tracks.json document with one object, then ``changes`` applied:
    ``{"video.width": 5}`` sets a field (dotted path; list positions as numbers)."""
    rle = mask_to_rle(np.ones((3, 4), bool))
    entry = {"frame": 0, "rle": rle, "bbox": [0, 0, 4, 3], "score": 1.5, "visible": True}
    document = {
        "video": {"width": 4, "height": 3, "fps": 10.0, "num_frames": 2},
        "model": {"name": "test"},
        "objects": [{"id": 1, "frames": [entry, {**entry, "frame": 1}]}],
    }
    for dotted, value in changes.items():
        *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
        target = document
        for part in parents:
            target = target[part]
        target[last] = value
    return document


HOSTILE_TRACKS = {
    "not JSON": ("{not json", r"\(Expecting property name"),
    "nested too deeply": ("[" * 100_000 + "]" * 100_000, r"\(nested too deeply\)$"),
    "not UTF-8": (b'{"video": "\xe9"}', r"is not UTF-8 \("),
    "NaN score": (
        json.dumps(_document(**{"objects.0.frames.0.score": math.nan})),
        r"\(NaN is not a JSON number\)$",
    ),
    "object true": (json.dumps(_document(**{"objects.0.id": True})), r"objects\.0\.id: "),
    "frame as text": (
        json.dumps(_document(**{"objects.0.frames.1.frame": "1"})),
        r"objects\.0\.frames\.1\.frame: Input should be a valid integer",
    ),
    "missing objects": (
        json.dumps({"video": _document()["video"]}),
        r"\(objects: Field required\)$",
    ),
    "missing height": (
        json.dumps(_document(video={"width": 4, "fps": 1.0})),
        r"\(video\.height: Field required\)$",
    ),
    "mask of another size": (
        json.dumps(_document(**{"objects.0.frames.1.rle": mask_to_rle(np.ones((2, 2), bool))})),
        r"object 1 frame 1: mask size \[2, 2\] is not the video's \[3, 4\]",
    ),
    "runs not covering the mask": (
        json.dumps(_document(**{"objects.0.frames.0.rle.counts": [1, 2]})),
        r"run lengths add up to 3, not 3x4",
    ),
    "frame past the end": (
        json.dumps(_document(**{"video.num_frames": 1})),
        r"object 1 frame 1 is past the video's 1 frames",
    ),
    "frames out of order": (
        json.dumps(_document(**{"objects.0.frames.1.frame": 0})),
        r"the frames of object 1 do not increase",
    ),
    "id twice": (
        json.dumps(_document(objects=_document()["objects"] * 2)),
        r"an object id appears twice",
    ),
    "visible without a mask": (
        json.dumps(_document(**{"objects.0.frames.0.rle": None})),
        r"frame 0 is visible but has no rle or bbox",
    ),
    "a frame of 2^30 pixels": (
        json.dumps(_document(video={"width": 1 << 15, "height": 1 << 15, "fps": 1.0})),
        r"a 32768x32768 frame is over",
    ),
    "negative fps": (json.dumps(_document(**{"video.fps": -1})), r"video\.fps: "),
    "a list": ("[]", r"Input should be a valid dictionary"),
}


@pytest.mark.parametrize(("content", "pattern"), HOSTILE_TRACKS.values(), ids=HOSTILE_TRACKS)
def test_read_tracks_refuses_damaged_files_in_one_line(
    tmp_path: Path, content: str | bytes, pattern: str
) -> None:
    path = tmp_path / "tracks.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError, match=pattern) as error:
        read_tracks(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith("not a valid tracks.json: ")


@pytest.mark.parametrize(
    ("where", "pattern"),
    [
        ("missing", r"^no such tracks\.json: "),
        ("folder", r"is a folder$"),
        ("/dev/zero", r"not a regular"),
    ],
)
def test_read_tracks_refuses_what_is_not_a_file(tmp_path: Path, where: str, pattern: str) -> None:
    path = {"missing": tmp_path / "tracks.json", "folder": tmp_path, "/dev/zero": Path("/dev/zero")}
    with pytest.raises(InputError, match=pattern):
        read_tracks(path[where])


def test_read_tracks_accepts_null_masks_of_hidden_entries(tmp_path: Path) -> None:
    """Other tools write ``null`` rle and bbox where an object is not visible."""
    changes = {"objects.0.frames.1.rle": None, "objects.0.frames.1.bbox": None,
               "objects.0.frames.1.visible": False, "video.fps": 10}  # fmt: skip
    path = tmp_path / "tracks.json"
    path.write_text(json.dumps(_document(**changes)))
    tracks = read_tracks(path)
    assert tracks.video == VideoInfo(4, 3, 10.0, 2, source=str(tmp_path))
    hidden = tracks.objects[0].at(1)
    assert hidden.bbox == [0, 0, 0, 0] and not hidden.visible and not hidden.mask().any()
    assert tracks.objects[0].at(0).mask().all() and tracks.objects[0].at(0).score == 1.5
