"""DAVIS J/F metrics: real DAVIS frames against themselves, and hand-computed small cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from configs.errors import InputError
from jobs.mask_io import read_mask_folder, read_mask_png
from jobs.metrics import (
    EvalReport,
    ObjectScores,
    SequenceScores,
    Statistics,
    boundary_f_measure,
    boundary_radius,
    dilate_by_disk,
    disk,
    evaluate_sequence,
    region_similarity,
    seg2bmap,
)

SEQUENCES = [
    "bear",
    "boat",
    "breakdance-flare",
    "car-turn",
    "dog-agility",
    "kite-walk",
    "mallard-water",
    "rollerblade",
    "soccerball",
    "tennis",
]


def square(top: int, left: int, size: int, shape: tuple[int, int] = (10, 10)) -> np.ndarray:
    """bool (H, W) with a size x size square whose top-left pixel is (top, left)."""
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


EMPTY = np.zeros((10, 10), dtype=bool)


# --- real DAVIS frames ------------------------------------------------------------------------


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_real_ground_truth_against_itself_scores_one(davis_root: Path, sequence: str) -> None:
    gt = read_mask_png(davis_root / "Annotations" / sequence / "00010.png")[1]
    assert gt.shape == (480, 854)
    assert 0 < gt.sum() < gt.size
    assert region_similarity(gt, gt) == 1.0
    assert boundary_f_measure(gt, gt) == 1.0


def test_real_frames_of_different_times_score_below_one(davis_root: Path) -> None:
    folder = davis_root / "Annotations" / "dog-agility"
    early = read_mask_png(folder / "00000.png")[1]
    late = read_mask_png(folder / "00024.png")[1]
    assert 0.0 <= region_similarity(late, early) < 0.5
    assert 0.0 <= boundary_f_measure(late, early) < 0.5


def test_real_sequence_against_itself(davis_root: Path) -> None:
    folder = davis_root / "Annotations" / "rollerblade"
    gt = (f.masks for f in read_mask_folder(folder))
    pred = (f.masks for f in read_mask_folder(folder))
    scores = evaluate_sequence(pred, gt, name="rollerblade")
    (obj,) = scores.objects
    assert obj.obj_id == 1
    assert obj.frames == tuple(range(1, 34))  # 35 frames, first and last left out
    assert (obj.j.mean, obj.j.recall, obj.j.decay) == (1.0, 1.0, 0.0)
    assert (obj.f.mean, obj.f.recall, obj.f.decay) == (1.0, 1.0, 0.0)
    assert scores.jf_mean == 1.0


# --- region similarity J ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        pytest.param(square(2, 2, 4), square(2, 2, 4), 1.0, id="identical"),
        pytest.param(square(2, 3, 4), square(2, 2, 4), 12 / 20, id="shift-right-1"),
        pytest.param(square(2, 4, 4), square(2, 2, 4), 8 / 24, id="shift-right-2"),
        pytest.param(square(3, 3, 4), square(2, 2, 6), 16 / 36, id="eroded-by-1"),
        pytest.param(square(0, 0, 2), square(6, 6, 2), 0.0, id="disjoint"),
        pytest.param(EMPTY, square(2, 2, 4), 0.0, id="empty-pred"),
        pytest.param(square(2, 2, 4), EMPTY, 0.0, id="empty-gt"),
        pytest.param(EMPTY, EMPTY, 1.0, id="both-empty"),
    ],
)
def test_region_similarity(pred: np.ndarray, gt: np.ndarray, expected: float) -> None:
    assert region_similarity(pred, gt) == pytest.approx(expected, abs=1e-12)


def test_region_similarity_rejects_shape_mismatch() -> None:
    with pytest.raises(InputError, match="shape"):
        region_similarity(np.zeros((4, 5), bool), np.zeros((5, 4), bool))


# --- boundary map and tolerance ---------------------------------------------------------------


def test_seg2bmap_of_a_square_is_the_ring_offset_towards_the_origin() -> None:
    # 4x4 square at rows/cols 2..5: boundary pixels differ from their E, S or SE neighbour,
    # giving the 5x5 ring from (1, 1) to (5, 5).
    expected = np.zeros((10, 10), dtype=bool)
    expected[1:6, 1:6] = True
    expected[2:5, 2:5] = False
    assert np.array_equal(seg2bmap(square(2, 2, 4)), expected)
    assert seg2bmap(square(2, 2, 4)).sum() == 16


def test_seg2bmap_last_row_and_column() -> None:
    mask = np.zeros((4, 4), dtype=bool)
    mask[2:, 2:] = True  # touches the bottom-right corner
    expected = np.array(
        [
            [0, 0, 0, 0],
            [0, 1, 1, 1],
            [0, 1, 0, 0],
            [0, 1, 0, 0],
        ],
        dtype=bool,
    )
    assert np.array_equal(seg2bmap(mask), expected)


def test_disk_matches_skimage_definition() -> None:
    assert np.array_equal(disk(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    assert disk(2).sum() == 13
    assert disk(8).shape == (17, 17)


@pytest.mark.parametrize(
    ("shape", "bound_th", "radius"),
    [
        ((480, 854), 0.008, 8),  # ceil(0.008 * 979.6) = ceil(7.84)
        ((10, 10), 0.008, 1),  # ceil(0.113)
        ((1080, 1920), 0.008, 18),  # ceil(17.62)
        ((480, 854), 1, 1),  # >= 1: pixels
        ((480, 854), 3, 3),
        ((480, 854), 0, 0),  # no tolerance: boundaries must coincide
        ((480, 854), 1e9, 980),  # capped at ceil(diagonal 979.6): a wider disk adds nothing
        ((10, 10), 500, 15),  # ceil(14.14)
    ],
)
def test_boundary_radius(shape: tuple[int, int], bound_th: float, radius: int) -> None:
    assert boundary_radius(shape, bound_th) == radius


def test_capped_radius_gives_the_f_of_an_uncapped_one() -> None:
    """F with a disk of 3x the diagonal, dilated by hand, equals F at the capped radius."""
    import cv2

    pred = np.zeros((6, 7), dtype=bool)
    pred[0:2, 0:2] = True
    gt = np.zeros((6, 7), dtype=bool)
    gt[4:6, 5:7] = True
    huge = disk(3 * 10)
    fg, gt_b = seg2bmap(pred), seg2bmap(gt)
    fg_dil = cv2.dilate(fg.astype(np.uint8), huge).astype(bool)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), huge).astype(bool)
    precision = np.count_nonzero(fg & gt_dil) / np.count_nonzero(fg)
    recall = np.count_nonzero(gt_b & fg_dil) / np.count_nonzero(gt_b)
    assert precision == recall == 1.0
    assert boundary_f_measure(pred, gt, bound_th=1e9) == 1.0
    assert boundary_f_measure(pred, gt, bound_th=1) < 1.0  # far apart at a 1-pixel tolerance


@pytest.mark.parametrize("radius", [0, 1, 8, 47, 48, 49, 63, 150])
def test_dilate_by_disk_is_cv2_dilate_with_the_disk_at_every_radius(radius: int) -> None:
    """Large radii take the distance-transform path: the same pixels as cv2.dilate."""
    import cv2

    boundary = np.random.default_rng(radius).random((90, 120)) > 0.997
    boundary[0, 0] = boundary[89, 119] = True  # corners: the disk reaches past the border
    expected = cv2.dilate(boundary.astype(np.uint8), disk(radius)).astype(bool)
    assert np.array_equal(dilate_by_disk(boundary, radius), expected)
    assert not dilate_by_disk(np.zeros((5, 5), bool), radius).any()


def test_huge_tolerance_scores_a_real_frame_quickly(davis_root: Path) -> None:
    """--bound-th 1e9 used to run cv2.dilate with a 1961 px disk (minutes a frame)."""
    gt = read_mask_png(davis_root / "Annotations" / "bear" / "00000.png")[1]
    shifted = np.roll(gt, 40, axis=1)
    assert boundary_f_measure(shifted, gt, bound_th=1e9) == 1.0  # everything is in reach
    assert boundary_f_measure(shifted, gt) < 0.5


@pytest.mark.parametrize("bound_th", [math.nan, math.inf, -1.0, -0.001, "0.008"])
def test_unusable_tolerance_is_refused_before_any_frame(bound_th) -> None:
    def frames():
        raise AssertionError("no frame may be read")
        yield {}

    with pytest.raises(InputError, match="boundary tolerance must be a finite number >= 0"):
        evaluate_sequence(frames(), frames(), bound_th=bound_th)
    with pytest.raises(InputError, match="boundary tolerance"):
        boundary_radius((4, 4), bound_th)


# --- boundary F -------------------------------------------------------------------------------


# With a 1-pixel tolerance (a plus-shaped disk):
# * a 1-pixel shift keeps every boundary pixel within reach: F = 1;
# * a 2-pixel shift of the 4x4 square matches 10 of 16 ring pixels each way: P = R = 0.625;
# * eroding a 6x6 square to 4x4: all 16 inner ring pixels match (P = 1), the outer ring's
#   4 corners do not (R = 20/24), F = 2 * 1 * 5/6 / (1 + 5/6) = 10/11.
@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        pytest.param(square(2, 2, 4), square(2, 2, 4), 1.0, id="identical"),
        pytest.param(square(2, 3, 4), square(2, 2, 4), 1.0, id="shift-1-within-tolerance"),
        pytest.param(square(2, 4, 4), square(2, 2, 4), 0.625, id="shift-2"),
        pytest.param(square(3, 3, 4), square(2, 2, 6), 10 / 11, id="eroded-by-1"),
        pytest.param(square(0, 0, 2), square(6, 6, 2), 0.0, id="far-apart"),
        pytest.param(EMPTY, square(2, 2, 4), 0.0, id="empty-pred"),
        pytest.param(square(2, 2, 4), EMPTY, 0.0, id="empty-gt"),
        pytest.param(EMPTY, EMPTY, 1.0, id="both-empty"),
    ],
)
def test_boundary_f_measure(pred: np.ndarray, gt: np.ndarray, expected: float) -> None:
    assert boundary_f_measure(pred, gt, bound_th=1) == pytest.approx(expected, abs=1e-12)
    # 10x10 images: the default 0.008 of the diagonal is the same 1-pixel tolerance
    assert boundary_f_measure(pred, gt) == pytest.approx(expected, abs=1e-12)


def test_boundary_f_measure_wider_tolerance_forgives_the_shift() -> None:
    assert boundary_f_measure(square(2, 4, 4), square(2, 2, 4), bound_th=2) == 1.0


# --- statistics -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "mean", "recall", "decay"),
    [
        # 8 frames: bins [0:3] and [5:8]
        ([1, 1, 1, 1, 0, 0, 0, 0], 0.5, 0.5, 1.0),
        # 5 frames: bins [0:2] and [3:5] -> 0.3 - 0.9
        ([0.2, 0.4, 0.6, 0.8, 1.0], 0.6, 0.6, -0.6),
        # exactly 0.5 does not count towards recall
        ([0.5, 0.5, 0.5], 0.5, 0.0, 0.0),
        # 4 frames: bins [0:2] and [2:4] -> 1.0 - 0.5
        ([1, 1, 0, 1], 0.75, 0.75, 0.5),
    ],
)
def test_statistics(values: list[float], mean: float, recall: float, decay: float) -> None:
    stats = Statistics.of(values)
    assert stats.mean == pytest.approx(mean)
    assert stats.recall == pytest.approx(recall)
    assert stats.decay == pytest.approx(decay)


def test_statistics_of_nothing_is_nan() -> None:
    stats = Statistics.of([])
    assert math.isnan(stats.mean) and math.isnan(stats.recall) and math.isnan(stats.decay)


# --- sequences --------------------------------------------------------------------------------


def test_evaluate_sequence_skips_first_and_last_frames() -> None:
    gt = [{1: square(2, 2, 4)} for _ in range(6)]
    # first and last predictions are wrong but not scored; frame 3 is missed
    pred = [{}, {1: square(2, 2, 4)}, {1: square(2, 2, 4)}, {}, {1: square(2, 2, 4)}, {}]
    scores = evaluate_sequence(pred, gt, name="toy")
    (obj,) = scores.objects
    assert obj.frames == (1, 2, 3, 4)
    assert obj.j_frames == (1.0, 1.0, 0.0, 1.0)
    assert obj.f_frames == (1.0, 1.0, 0.0, 1.0)
    assert (obj.j.mean, obj.j.recall, obj.j.decay) == (0.75, 0.75, 0.5)
    assert scores.jf_mean == 0.75


def test_evaluate_sequence_objects_come_from_first_ground_truth_frame() -> None:
    a, b = square(0, 0, 3), square(6, 6, 3)
    gt = [{1: a, 2: b}, {1: a, 2: b}, {1: a}, {1: a, 2: b}]
    pred = [{}, {1: a}, {1: a, 2: b}, {}]
    scores = evaluate_sequence(pred, gt)
    first, second = scores.objects
    assert first.j_frames == (1.0, 1.0)
    assert second.j_frames == (0.0, 0.0)  # missed at 1; predicted at 2 where the GT is empty
    assert scores.j.mean == 0.5


def test_evaluate_sequence_frames_without_any_mask_score_one() -> None:
    gt = [{1: square(0, 0, 3)}, {}, {}, {}]
    pred = [{}, {}, {}, {}]
    (obj,) = evaluate_sequence(pred, gt).objects
    assert obj.j_frames == (1.0, 1.0) and obj.f_frames == (1.0, 1.0)


@pytest.mark.parametrize(
    ("pred", "gt", "message"),
    [
        ([{}] * 3, [{1: square(0, 0, 2)}] * 4, "differ in length"),
        ([{}] * 2, [{1: square(0, 0, 2)}] * 2, "at least 3 frames"),
        ([{}] * 3, [{}] * 3, "no object"),
        ([{3: square(0, 0, 2)}] * 3, [{1: square(0, 0, 2)}] * 3, r"ids \[3\]"),
        ([{1: np.zeros((4, 4), bool)}] * 3, [{1: square(0, 0, 2)}] * 3, "shape"),
    ],
)
def test_evaluate_sequence_rejects_bad_input(pred: list, gt: list, message: str) -> None:
    with pytest.raises(InputError, match=message):
        evaluate_sequence(pred, gt, name="bad")


# --- report -----------------------------------------------------------------------------------


def _object(obj_id: int, j: float, f: float, n: int = 4) -> ObjectScores:
    return ObjectScores(obj_id, tuple(range(1, n + 1)), (j,) * n, (f,) * n)


def test_report_overall_averages_over_objects_not_sequences() -> None:
    two = SequenceScores("two", (_object(1, 1.0, 1.0), _object(2, 0.0, 0.5)))
    one = SequenceScores("one", (_object(1, 1.0, 1.0),))
    report = EvalReport((two, one))
    assert two.j.mean == 0.5 and one.j.mean == 1.0
    assert report.j.mean == pytest.approx(2 / 3)
    assert report.f.mean == pytest.approx(2.5 / 3)
    assert report.jf_mean == pytest.approx((2 / 3 + 2.5 / 3) / 2)
    assert report.j.recall == pytest.approx(2 / 3)


def test_report_json_and_table() -> None:
    seq = SequenceScores("toy", (_object(1, 1.0, 0.5), _object(2, 0.0, 0.5)))
    report = EvalReport((seq,))
    data = json.loads(report.to_json())
    assert data["overall"]["J&F-Mean"] == pytest.approx(0.5)
    assert data["overall"]["J-Mean"] == pytest.approx(0.5)
    assert data["overall"]["F-Mean"] == pytest.approx(0.5)
    (seq_json,) = data["sequences"]
    assert seq_json["name"] == "toy"
    assert [o["id"] for o in seq_json["objects"]] == [1, 2]
    assert seq_json["objects"][1]["J"] == [0.0] * 4
    table = report.format_table().splitlines()
    assert table[0].split()[:3] == ["Sequence", "J&F-Mean", "J-Mean"]
    assert table[1].split()[:3] == ["toy", "0.5000", "0.5000"]
    assert table[2].split()[:3] == ["#1", "0.7500", "1.0000"]
    assert table[-1].split()[:2] == ["Overall", "0.5000"]


def test_report_json_writes_nan_as_null() -> None:
    empty = EvalReport((SequenceScores("none", ()),))
    data = json.loads(empty.to_json())
    assert data["overall"]["J-Mean"] is None
