"""``streamseg eval``: real DAVIS ground truth against itself and against shifted copies."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from jobs.mask_io import read_mask_folder, write_indexed_png
from jobs.media import ModelInfo, VideoInfo
from jobs.tracks import TracksWriter
from worker.cli import main
from worker.runtimes.batch.exports import ExportKind, write_exports

SEQUENCE = "dog-agility"  # 25 frames
SHIFT = 16  # pixels to the right


def _gt(davis_root: Path, sequence: str = SEQUENCE) -> Path:
    return davis_root / "Annotations" / sequence


def _write_shifted(gt_dir: Path, out_dir: Path, shift: int = SHIFT) -> Path:
    """DAVIS 2016-style 0/255 PNGs of the ground truth moved ``shift`` pixels right."""
    out_dir.mkdir(parents=True)
    for item in read_mask_folder(gt_dir):
        mask = np.zeros_like(item.masks[1])
        mask[:, shift:] = item.masks[1][:, :-shift]
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(
            out_dir / f"{item.frame:05d}.png"
        )
    return out_dir


def _write_tracks(gt_dir: Path, path: Path) -> Path:
    frames = list(read_mask_folder(gt_dir))
    height, width = frames[0].masks[1].shape
    entries = []
    for item in frames:
        rle = mask_utils.encode(np.asfortranarray(item.masks[1].astype(np.uint8)))
        entries.append(
            {
                "frame": item.frame,
                "rle": {"size": [height, width], "counts": rle["counts"].decode()},
                "bbox": [0, 0, 0, 0],
                "score": 1.0,
                "visible": True,
            }
        )
    document = {
        "video": {"width": width, "height": height, "fps": 24, "num_frames": len(frames)},
        "model": {"name": "ground-truth"},
        "objects": [{"id": 1, "frames": entries}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["eval", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ground_truth_against_itself(davis_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    code, stdout, _ = _run(capsys, str(_gt(davis_root)), str(_gt(davis_root)), "--json", str(out))
    assert code == 0
    rows = stdout.splitlines()
    assert rows[1].split()[:2] == [SEQUENCE, "1.0000"]
    assert rows[-1].split()[:2] == ["Overall", "1.0000"]
    report = json.loads(out.read_text())
    assert report["overall"]["J&F-Mean"] == 1.0
    (seq,) = report["sequences"]
    assert seq["name"] == SEQUENCE
    assert seq["objects"][0]["frames"] == list(range(1, 24))


def test_shifted_prediction_scores_below_one(davis_root: Path, tmp_path: Path, capsys) -> None:
    pred = _write_shifted(_gt(davis_root), tmp_path / SEQUENCE)
    out = tmp_path / "report.json"
    code, _, _ = _run(capsys, str(pred), str(_gt(davis_root)), "--json", str(out))
    assert code == 0
    overall = json.loads(out.read_text())["overall"]
    assert 0.3 < overall["J-Mean"] < 0.99
    assert 0.0 < overall["F-Mean"] < 0.99
    assert overall["J&F-Mean"] == pytest.approx((overall["J-Mean"] + overall["F-Mean"]) / 2)


def test_first_and_last_prediction_frames_are_optional(
    davis_root: Path, tmp_path: Path, capsys
) -> None:
    pred = _write_shifted(_gt(davis_root), tmp_path / "pred", shift=1)
    (pred / "00000.png").unlink()
    (pred / "00024.png").unlink()
    code, stdout, _ = _run(capsys, str(pred), str(_gt(davis_root)))
    assert code == 0
    assert 0.9 < float(stdout.splitlines()[-1].split()[1]) < 1.0


@pytest.mark.parametrize("as_folder", [False, True], ids=["file", "folder"])
def test_tracks_json_prediction(davis_root: Path, tmp_path: Path, capsys, as_folder: bool) -> None:
    tracks = _write_tracks(_gt(davis_root), tmp_path / "run" / "tracks.json")
    pred = tracks.parent if as_folder else tracks
    out = tmp_path / "report.json"
    code, _, _ = _run(capsys, str(pred), str(_gt(davis_root)), "--json", str(out))
    assert code == 0
    assert json.loads(out.read_text())["overall"]["J&F-Mean"] == 1.0


def test_sequence_root(davis_root: Path, tmp_path: Path, capsys) -> None:
    # GT root of two real sequences (linked in place); one predicted exactly, one shifted
    gt_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    gt_root.mkdir()
    pred_root.mkdir()
    for name in (SEQUENCE, "rollerblade"):
        (gt_root / name).symlink_to(_gt(davis_root, name), target_is_directory=True)
    (pred_root / "rollerblade").symlink_to(_gt(davis_root, "rollerblade"))
    _write_shifted(_gt(davis_root), pred_root / SEQUENCE)
    out = tmp_path / "report.json"
    code, stdout, _ = _run(capsys, str(pred_root), str(gt_root), "--json", str(out))
    assert code == 0
    report = json.loads(out.read_text())
    scores = {s["name"]: s["J&F-Mean"] for s in report["sequences"]}
    assert list(scores) == [SEQUENCE, "rollerblade"]
    assert scores["rollerblade"] == 1.0
    assert scores[SEQUENCE] < 0.99
    assert report["overall"]["J&F-Mean"] == pytest.approx(sum(scores.values()) / 2)
    names = [line.split()[0] for line in stdout.splitlines()[1:]]
    assert names == [SEQUENCE, "rollerblade", "Overall"]


def test_bad_inputs_exit_2_with_one_line(davis_root: Path, tmp_path: Path, capsys) -> None:
    gt = _gt(davis_root)
    empty = tmp_path / "empty"
    empty.mkdir()
    gapped = _write_shifted(gt, tmp_path / "gapped")
    (gapped / "00010.png").unlink()
    renamed = tmp_path / "renamed" / "tracks.json"
    _write_tracks(gt, renamed)
    document = json.loads(renamed.read_text())
    document["objects"][0]["id"] = 7
    renamed.write_text(json.dumps(document))
    nested = tmp_path / "nested" / "tracks.json"
    nested.parent.mkdir()
    nested.write_text("[" * 100_000 + "]" * 100_000)
    boolean_id = tmp_path / "boolean" / "tracks.json"
    _write_tracks(gt, boolean_id)
    document = json.loads(boolean_id.read_text())
    document["objects"][0]["id"] = True  # not object 1
    boolean_id.write_text(json.dumps(document))
    small_empty = _write_shifted(gt, tmp_path / "small_empty")
    Image.new("L", (100, 50)).save(small_empty / "00005.png")  # no object: it read as empty
    other_video = tmp_path / "other_video" / "tracks.json"
    _write_tracks(gt, other_video)
    document = json.loads(other_video.read_text())
    document["video"].update(width=427, height=240)
    document["objects"] = []  # nothing visible: no mask would show the size
    other_video.write_text(json.dumps(document))
    cases = [
        ((str(small_empty), str(gt)), r"00005\.png is 100x50, expected 854x480$"),
        ((str(other_video), str(gt)), r"of a 427x240 video, the ground truth is 854x480$"),
        ((str(nested), str(gt)), r"tracks\.json .*\(nested too deeply\)$"),
        ((str(boolean_id), str(gt)), r"objects\.0\.id: Input should be a valid integer"),
        ((str(tmp_path / "missing"), str(gt)), "does not exist"),
        ((str(gt), str(empty)), "neither PNG masks nor sequence folders"),
        ((str(empty), str(gt)), "neither a tracks.json nor a folder of PNG masks"),
        ((str(gapped), str(gt)), "no mask for frame 10"),
        ((str(renamed), str(gt)), r"object ids \[7\]"),
        ((str(empty), str(davis_root / "Annotations")), "no prediction in"),
    ]
    for argv, message in cases:
        code, stdout, stderr = _run(capsys, *argv)
        assert code == 2, argv
        assert stdout == ""
        assert stderr.startswith("streamseg: error: ") and stderr.count("\n") == 1
        assert re.search(message, stderr), (message, stderr)


# --- overlapping tracks.json masks: one label per pixel, as DAVIS ---------------------------

OVERLAP_FRAMES, HEIGHT, WIDTH = 5, 12, 20


def _two_object_gt(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth of two disjoint boxes on every frame, as indexed PNGs; returns the boxes."""
    gt1 = np.zeros((HEIGHT, WIDTH), dtype=bool)
    gt1[2:10, 1:9] = True  # 64 pixels
    gt2 = np.zeros((HEIGHT, WIDTH), dtype=bool)
    gt2[3:9, 11:19] = True  # 48 pixels
    folder.mkdir(parents=True)
    for frame in range(OVERLAP_FRAMES):
        write_indexed_png(folder / f"{frame:05d}.png", {1: gt1, 2: gt2}, (HEIGHT, WIDTH))
    return gt1, gt2


def _overlapping_tracks(path: Path, masks: dict[int, np.ndarray], scores: dict) -> Path:
    """A real tracks.json whose objects overlap on every frame, with these score logits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    video = VideoInfo(WIDTH, HEIGHT, 10.0)
    with TracksWriter(path, video, ModelInfo(name="test")) as writer:
        for frame in range(OVERLAP_FRAMES):
            for obj_id, mask in masks.items():
                writer.add(frame, obj_id, mask, scores[obj_id], True)
        writer.finish(OVERLAP_FRAMES)
    return path


def _report(capsys, pred: Path, gt: Path, out: Path) -> dict:
    code, _, err = _run(capsys, str(pred), str(gt), "--json", str(out))
    assert code == 0, err
    return json.loads(out.read_text())


@pytest.mark.parametrize(
    ("scores", "j_1", "j_2"),
    [
        ({1: 1.0, 2: 2.0}, 1.0, 1.0),  # object 2 keeps the overlap: object 1 is exactly gt1
        ({1: 2.0, 2: 1.0}, 64 / 112, 0.0),  # object 1 keeps it: object 2 has no pixel left
    ],
    ids=["object-2-wins", "object-1-wins"],
)
def test_overlapping_tracks_are_scored_one_label_per_pixel(
    tmp_path: Path, capsys, scores: dict, j_1: float, j_2: float
) -> None:
    """Object 1 predicts gt1 and gt2 together, object 2 predicts gt2: scored separately,
    object 1 would get J = 64/112 whatever the scores."""
    gt1, gt2 = _two_object_gt(tmp_path / "gt")
    pred = _overlapping_tracks(tmp_path / "run" / "tracks.json", {1: gt1 | gt2, 2: gt2}, scores)
    report = _report(capsys, pred, tmp_path / "gt", tmp_path / "report.json")
    objects = {o["id"]: o for o in report["sequences"][0]["objects"]}
    assert objects[1]["J"] == pytest.approx([j_1] * (OVERLAP_FRAMES - 2))
    assert objects[2]["J"] == pytest.approx([j_2] * (OVERLAP_FRAMES - 2))
    assert report["overall"]["J-Mean"] == pytest.approx((j_1 + j_2) / 2)


@pytest.mark.parametrize(
    "scores",
    [{1: 1.0, 2: 2.0}, {1: 2.0, 2: -1.0}, {1: 40.0, 2: 50.0}, {1: 3.0, 2: 3.0}],
    ids=["2-wins", "1-wins", "saturated-logits", "tie"],
)
def test_eval_of_tracks_json_equals_eval_of_its_davis_export(
    tmp_path: Path, capsys, scores: dict
) -> None:
    """The DAVIS PNGs and eval apply one overlap rule to the same scores: identical reports.
    Logits 40 and 50 both become confidence 1.0 after a sigmoid, yet object 2 must win."""
    gt1, gt2 = _two_object_gt(tmp_path / "gt")
    spread = np.zeros((HEIGHT, WIDTH), dtype=bool)
    spread[1:11, 5:15] = True  # overlaps both ground-truth boxes
    run = tmp_path / "run"
    _overlapping_tracks(run / "tracks.json", {1: gt1 | spread, 2: gt2 | spread}, scores)
    write_exports(run, [ExportKind.DAVIS])
    from_tracks = _report(capsys, run / "tracks.json", tmp_path / "gt", tmp_path / "a.json")
    from_pngs = _report(capsys, run / "davis", tmp_path / "gt", tmp_path / "b.json")
    for report in (from_tracks, from_pngs):
        report["sequences"][0].pop("name")
    assert from_tracks == from_pngs
    winner = 2 if scores[2] > scores[1] else 1
    with Image.open(run / "davis" / "00001.png") as image:
        labels = np.asarray(image)
    assert (labels[spread] == winner).all()
