"""``streamseg eval``: real DAVIS ground truth against itself and against shifted copies."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from jobs.mask_io import read_mask_folder
from worker.cli import main

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
    cases = [
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
