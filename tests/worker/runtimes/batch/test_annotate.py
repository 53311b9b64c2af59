"""``streamseg annotate``: batches from masks, prompt files and --auto; failures, resume.

Every run is a real one on short DAVIS clips (3 frames): first-frame masks, every export and
--auto on the random-weight SAM 2 test model at 256; prompts files, interrupt-and-restart and
reruns on the weights-included ``lite`` engine at 240 (which videos ran is read from their
rewritten ``tracks.json``). ``--queue`` runs against real Redis and workers:
``tests/jobs/test_annotate_queue.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from configs.errors import InputError
from jobs.mask_io import read_mask_png
from jobs.tracks import read_tracks
from tests.conftest import TEST_IMAGE_SIZE, TEST_MODEL, frames_folder
from tests.support.cli import box_mask_png, row, run_cli
from worker.runtimes.batch.exports import ExportKind, parse_exports
from worker.runtimes.batch.inputs import discover_inputs
from worker.runtimes.batch.manifest import MANIFEST_FILE, OutputRequest, complete_manifest
from worker.runtimes.batch.runner import Status, VideoResult
from worker.runtimes.batch.summary import exit_code, format_summary
from worker.video.source import open_video

CLIP = 3  # frames per DAVIS clip


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread. With other work on the 2 shared cores a second thread mostly
    waits (this module: ~110 s with two, ~20 s with one); on idle cores both take ~20 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model_args(checkpoint: Path) -> list[str]:
    return [
        "--model", TEST_MODEL, "--checkpoint", str(checkpoint),
        "--image-size", str(TEST_IMAGE_SIZE), "--device", "cpu", "--quiet",
    ]  # fmt: skip


def truncated_video(videos_dir: Path, folder: Path) -> Path:
    """test-sample2.mp4 (index first) cut inside packet 4: the frames of packets 0-3 that
    leave the decoder before it (1 to 4, by its reordering delay) decode, then it fails."""
    source = videos_dir / "test-sample2.mp4"
    with av.open(str(source)) as container:
        packets = [(p.pos, p.size) for p in itertools.islice(container.demux(video=0), 5)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cut.mp4"
    path.write_bytes(source.read_bytes()[: packets[4][0] + packets[4][1] // 2])
    return path


# ----- the real model: first-frame masks, every export, bad inputs, rerun --------------------


@pytest.fixture(scope="module")
def mask_batch(tmp_path_factory, davis_root: Path, videos_dir: Path) -> Path:
    """frames/{bear,boat,tennis} (3 DAVIS frames each), videos/cut.mp4, masks/ for all four.

    bear: DAVIS layout ``masks/bear/00000.png``; boat: ``masks/boat.png``; tennis: a mask of
    the wrong size; cut: a video that stops decoding at frame 1.
    """
    root = tmp_path_factory.mktemp("annotate")
    for name in ("bear", "boat", "tennis"):
        frames_folder(root / "frames" / name, davis_root / "JPEGImages" / name, 0, CLIP)
    truncated_video(videos_dir, root / "videos")
    annotations = davis_root / "Annotations"
    (root / "masks" / "bear").mkdir(parents=True)
    (root / "masks" / "bear" / "00000.png").symlink_to(annotations / "bear" / "00000.png")
    (root / "masks" / "boat.png").symlink_to(annotations / "boat" / "00000.png")
    box_mask_png(root / "masks" / "tennis.png", 100, 100)
    box_mask_png(root / "masks" / "cut.png", 568, 320)
    return root


def test_mask_batch_summary_reports_each_video(
    mask_batch: Path, davis_root: Path, sam2_checkpoint: Path, capsys
) -> None:
    out = mask_batch / "out"
    code, stdout, _ = run_cli(
        capsys, "annotate", mask_batch / "frames", mask_batch / "videos",
        "--masks", mask_batch / "masks", "--out", out, "--export", "all",
        *model_args(sam2_checkpoint),
    )  # fmt: skip
    assert code == 1  # some videos failed, the others finished
    for name in ("bear", "boat"):
        assert row(stdout, name)[1:4] == ["done", str(CLIP), "1"]
        assert complete_manifest(out / name, _request()) is not None
    tennis = row(stdout, "tennis")
    assert tennis[1] == "failed"
    assert "mask is 100x100, the video is 854x480" in tennis[-1]
    cut = row(stdout, "cut")
    assert cut[1] == "failed"
    assert "truncated or corrupt video" in cut[-1]
    at_frame = re.search(r"at frame (\d+) of 149", cut[-1])
    assert at_frame is not None and 1 <= int(at_frame.group(1)) <= 4, cut[-1]
    assert not (out / "cut" / MANIFEST_FILE).exists()
    assert not (out / "cut" / "tracks.json").exists()
    assert stdout.rstrip().endswith("4 videos: 2 done, 2 failed")

    _check_exports(out / "bear", width=854, height=480)

    # Rerun: the complete videos are skipped untouched, the bad ones fail again.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "bear").rglob("*")}
    code, stdout, _ = run_cli(
        capsys, "annotate", mask_batch / "frames", mask_batch / "videos",
        "--masks", mask_batch / "masks", "--out", out, "--export", "davis,mot",
        *model_args(sam2_checkpoint),
    )  # fmt: skip
    assert code == 1
    assert row(stdout, "bear")[1] == "skipped" and row(stdout, "boat")[1] == "skipped"
    assert row(stdout, "cut")[1] == "failed" and row(stdout, "tennis")[1] == "failed"
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "bear").rglob("*")}

    # The annotations evaluate against the ground truth of those frames.
    gt = mask_batch / "gt"
    for name in ("bear", "boat"):
        (gt / name).mkdir(parents=True)
        for frame in range(CLIP):
            png = davis_root / "Annotations" / name / f"{frame:05d}.png"
            (gt / name / png.name).symlink_to(png)
    code, stdout, _ = run_cli(capsys, "eval", out, gt)
    assert code == 0
    assert "bear" in stdout and "boat" in stdout


def _request() -> OutputRequest:
    exports = tuple(kind.value for kind in ExportKind)
    return OutputRequest(exports, None, TEST_MODEL)


def _check_exports(folder: Path, width: int, height: int) -> None:
    """Every export of one video, read back by the readers of its format."""
    tracks = read_tracks(folder / "tracks.json")
    assert tracks.video.num_frames == CLIP and set(tracks.masks_at(0)) == {1}

    pngs = sorted((folder / "davis").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(CLIP)]
    assert Image.open(pngs[0]).mode == "P"
    first = read_mask_png(pngs[0])
    assert first.keys() <= {1} and first.get(1, np.zeros((height, width))).shape == (height, width)

    ytvis = json.loads((folder / "ytvis.json").read_text())
    assert ytvis["videos"][0]["length"] == CLIP
    rles = [r for r in ytvis["annotations"][0]["segmentations"] if r is not None]
    decoded = mask_utils.decode({"size": rles[0]["size"], "counts": rles[0]["counts"].encode()})
    assert decoded.shape == (height, width)

    cvat = ET.parse(folder / "annotations.xml").getroot()
    assert cvat.findtext("version") == "1.1"
    assert cvat.find("meta/task/size").text == str(CLIP)

    for line in (folder / "mot.txt").read_text().splitlines():
        fields = line.split(",")
        assert len(fields) == 10 and 1 <= int(fields[0]) <= CLIP and int(fields[1]) == 1
        assert 0.0 <= float(fields[6]) <= 1.0

    with open_video(folder / "overlay.mp4") as overlay:
        assert (overlay.info.width, overlay.info.height) == (width, height)
        assert sum(1 for _ in overlay) == CLIP


# ----- --auto on the real model ----------------------------------------------------------------


def test_auto_keeps_the_best_generator_masks(
    davis_root: Path, sam2_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    frames_folder(tmp_path / "in" / "bear", davis_root / "JPEGImages" / "bear", 0, 2)
    code, stdout, _ = run_cli(
        capsys, "annotate", tmp_path / "in", "--auto", "2", "--out", tmp_path / "out",
        "--auto-points-per-side", "2", "--auto-iou-thresh", "0", "--auto-stability-thresh", "0",
        *model_args(sam2_checkpoint),
    )  # fmt: skip
    assert code == 0, stdout
    done = row(stdout, "bear")
    assert done[1:3] == ["done", "2"]
    ids = [int(i) for i in done[3].split(",")]
    assert ids and ids == list(range(1, len(ids) + 1)) and len(ids) <= 2
    assert len(list((tmp_path / "out" / "bear" / "davis").glob("*.png"))) == 2


def test_auto_with_lite_is_a_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "in").mkdir()
    code, _, err = run_cli(
        capsys, "annotate", tmp_path / "in", "--auto", "3", "--out", tmp_path / "out",
        "--model", "lite",
    )  # fmt: skip
    assert code == 2
    assert err.strip().startswith("streamseg: error: --auto needs a SAM 2 model")
    assert len(err.strip().splitlines()) == 1


# ----- interrupt and restart, prompts files (the lite engine) ---------------------------------

LITE_ARGS = ["--model", "lite", "--image-size", "240"]  # real weights, CPU, small frames
BOX = [{"object": 1, "box": [360, 200, 440, 280]}]  # a small box: a quick GrabCut first mask


@pytest.fixture
def prompt_batch(davis_root: Path, tmp_path: Path) -> Path:
    """in/{a,b,c} (CLIP DAVIS frames each) and prompts.yaml naming them plus a missing 'ghost'."""
    for name, sequence in (("a", "bear"), ("b", "boat"), ("c", "soccerball")):
        frames_folder(tmp_path / "in" / name, davis_root / "JPEGImages" / sequence, 0, CLIP)
    document = {"a": BOX, "b": {"prompts": BOX}, "c": BOX, "ghost": BOX}
    (tmp_path / "prompts.yaml").write_text(json.dumps(document))  # JSON is valid YAML
    return tmp_path


def tracks_stamps(out: Path) -> dict[str, tuple[int, int] | None]:
    """(inode, mtime) of each video's tracks.json (None if absent): it changes when it ran."""
    stamps: dict[str, tuple[int, int] | None] = {}
    for name in ("a", "b", "c"):
        path = out / name / "tracks.json"
        stat = path.stat() if path.exists() else None
        stamps[name] = None if stat is None else (stat.st_ino, stat.st_mtime_ns)
    return stamps


def ran_since(before: dict[str, tuple[int, int] | None], out: Path) -> list[str]:
    """The videos the engine tracked again since ``before`` (their tracks.json was rewritten)."""
    after = tracks_stamps(out)
    return [name for name in after if after[name] is not None and after[name] != before[name]]


def _argv(batch: Path) -> list[object]:
    return [
        "annotate", batch / "in", "--prompts", batch / "prompts.yaml", "--out", batch / "out",
        "--export", "davis,ytvis", "--quiet", *LITE_ARGS,
    ]  # fmt: skip


def test_interrupted_batch_resumes_with_the_rest(
    prompt_batch: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import worker.runtimes.batch.runner as runner_module

    real = runner_module.segment_video

    def ctrl_c_in_b(request, make_tracker, meta, on_progress=None, should_stop=None):
        """The user's Ctrl-C while video b is at frame 2 (the engine itself is real)."""
        if Path(request.source).name != "b":
            return real(request, make_tracker, meta, on_progress, should_stop)
        calls = itertools.count()

        def interrupt_at_frame_2() -> bool:
            if next(calls) == 2:
                raise KeyboardInterrupt
            return False

        return real(request, make_tracker, meta, on_progress, interrupt_at_frame_2)

    monkeypatch.setattr(runner_module, "segment_video", ctrl_c_in_b)
    code, stdout, err = run_cli(capsys, *_argv(prompt_batch))
    assert code == 130 and "rerun the same command" in err
    assert [row(stdout, n)[1] for n in ("ghost", "a", "b", "c")] == [
        "failed", "done", "interrupted", "pending",
    ]  # fmt: skip
    assert "names this video but no input has that name" in row(stdout, "ghost")[-1]
    out = prompt_batch / "out"
    assert (out / "a" / MANIFEST_FILE).is_file()
    assert not (out / "b" / MANIFEST_FILE).exists() and not (out / "b" / "tracks.json").exists()
    assert not (out / "c").exists()  # never started
    a_manifest = (out / "a" / MANIFEST_FILE).stat().st_mtime_ns
    before = tracks_stamps(out)

    monkeypatch.setattr(runner_module, "segment_video", real)
    code, stdout, _ = run_cli(capsys, *_argv(prompt_batch))
    assert code == 1  # 'ghost' is still reported
    assert ran_since(before, out) == ["b", "c"]  # only the unfinished videos ran
    assert [row(stdout, n)[1] for n in ("a", "b", "c")] == ["skipped", "done", "done"]
    assert (out / "a" / MANIFEST_FILE).stat().st_mtime_ns == a_manifest
    for name in ("b", "c"):
        assert row(stdout, name)[2:4] == [str(CLIP), "1"]
        assert len(list((out / name / "davis").glob("*.png"))) == CLIP
        assert (out / name / "ytvis.json").is_file()
        assert read_tracks(out / name / "tracks.json").model.name == "lite"


def test_damaged_or_different_output_runs_again(prompt_batch: Path, capsys) -> None:
    out = prompt_batch / "out"
    code, stdout, _ = run_cli(capsys, *_argv(prompt_batch))
    assert [row(stdout, n)[1] for n in ("a", "b", "c")] == ["done"] * 3
    (out / "a" / "davis" / "00002.png").write_bytes(b"damaged")
    (out / "b" / "ytvis.json").unlink()
    before = tracks_stamps(out)
    code, stdout, _ = run_cli(capsys, *_argv(prompt_batch))
    assert ran_since(before, out) == ["a", "b"]
    assert [row(stdout, n)[1] for n in ("a", "b", "c")] == ["done", "done", "skipped"]
    assert read_mask_png(out / "a" / "davis" / "00002.png") is not None  # rewritten
    assert (out / "b" / "ytvis.json").is_file()

    before = tracks_stamps(out)
    code, stdout, _ = run_cli(capsys, *_argv(prompt_batch), "--export", "mot")
    assert ran_since(before, out) == ["a", "b", "c"]  # mot was not part of the earlier request
    assert (out / "c" / "mot.txt").is_file()

    before = tracks_stamps(out)
    code, stdout, _ = run_cli(capsys, *_argv(prompt_batch), "--force")
    assert ran_since(before, out) == ["a", "b", "c"]
    assert [row(stdout, n)[1] for n in ("a", "b", "c")] == ["done"] * 3


def test_bad_prompt_entry_fails_only_its_video(prompt_batch: Path, capsys) -> None:
    document = {"a": BOX, "b": [{"object": 1}]}
    (prompt_batch / "prompts.yaml").write_text(json.dumps(document))
    code, stdout, _ = run_cli(capsys, *_argv(prompt_batch))
    assert code == 1
    assert row(stdout, "a")[1] == "done"
    assert row(stdout, "b")[1] == "failed" and "a prompt needs points" in row(stdout, "b")[-1]
    assert row(stdout, "c")[1] == "failed" and "has no prompts for 'c'" in row(stdout, "c")[-1]


def test_unreadable_prompts_file_is_one_line(prompt_batch: Path, capsys) -> None:
    (prompt_batch / "prompts.yaml").write_text("[1, 2")
    code, _, err = run_cli(capsys, *_argv(prompt_batch))
    assert code == 2 and err.startswith("streamseg: error: cannot parse prompts file")
    (prompt_batch / "prompts.yaml").write_text("- 1\n- 2\n")
    code, _, err = run_cli(capsys, *_argv(prompt_batch))
    assert code == 2 and "must map video names to prompt lists" in err


# ----- pieces ------------------------------------------------------------------------------------


def test_discovery_of_files_folders_and_problems(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    for name in ("x.mp4", "y.MOV", "notes.txt"):
        (tmp_path / "videos" / name).write_bytes(b"")
    seq = tmp_path / "davis" / "seq"
    seq.mkdir(parents=True)
    (seq / "00000.jpg").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.mkv").write_bytes(b"")
    os.mkfifo(tmp_path / "camera.mp4")  # neither a file nor a folder: read once, no batch
    found = discover_inputs(
        [tmp_path / "videos", tmp_path / "davis", seq, tmp_path / "missing.mp4",
         tmp_path / "empty", tmp_path / "other", tmp_path / "camera.mp4", Path("/dev/null")]
    )  # fmt: skip
    assert [(v.name, v.source.name) for v in found.videos] == [
        ("x", "x.mp4"), ("y", "y.MOV"), ("seq", "seq"),
    ]  # fmt: skip
    problems = {p.name: p.message for p in found.problems}
    assert problems.keys() == {"seq", "missing", "empty", "x", "camera", "null"}
    assert "same name" in problems["seq"] and "no such file" in problems["missing"]
    for name in ("camera", "null"):
        assert "is not a file or a folder" in problems[name], problems[name]


def test_parse_exports() -> None:
    assert parse_exports([]) == (ExportKind.TRACKS, ExportKind.DAVIS)
    assert parse_exports(["mot", "cvat,ytvis"]) == (
        ExportKind.TRACKS, ExportKind.YTVIS, ExportKind.CVAT, ExportKind.MOT,
    )  # fmt: skip
    assert parse_exports(["all"]) == tuple(ExportKind)
    with pytest.raises(Exception, match="unknown export 'png'"):
        parse_exports(["png"])


def test_summary_table_and_exit_code() -> None:
    results = [
        VideoResult("bear", Status.DONE, 80, (1,), 4.0, "/out/bear"),
        VideoResult("cut", Status.FAILED, detail="truncated"),
        VideoResult("boat", Status.SKIPPED, 75, (1, 2), detail="complete"),
    ]
    table = format_summary(results)
    lines = table.splitlines()
    assert lines[0].split() == ["video", "status", "frames", "objects", "fps", "seconds", "detail"]
    assert lines[2].split() == ["bear", "done", "80", "1", "20.0", "4.0", "/out/bear"]
    assert lines[-1] == "3 videos: 1 done, 1 skipped, 1 failed"
    assert exit_code(results) == 1
    assert exit_code(results[::2]) == 0
    assert exit_code([VideoResult("x", Status.INTERRUPTED)]) == 130


def test_prompt_sources_read_yaml_and_indexed_masks(tmp_path: Path) -> None:
    from jobs.mask_io import write_indexed_png
    from worker.runtimes.batch.inputs import VideoInput
    from worker.runtimes.batch.prompt_sources import FirstFrameMasks, PromptsFile

    (tmp_path / "prompts.yml").write_text(
        "clip.mp4:\n  - {object: 2, points: [[10, 20], [30, 40]], labels: [1, 0]}\n"
        "  - {object: 5, frame: 3, box: [0, 0, 8, 8]}\n"
    )
    source = PromptsFile.load(tmp_path / "prompts.yml")
    video = VideoInput("clip", tmp_path / "clip.mp4")
    prompts = source.prompts_for(video)
    assert [(p.obj_id, p.frame, p.kind) for p in prompts] == [(2, 0, "points"), (5, 3, "box")]
    assert prompts[0].labels == (1, 0) and source.unknown_names([video]) == []

    masks = {3: np.zeros((6, 8), bool), 7: np.zeros((6, 8), bool)}
    masks[3][1:3, 1:3] = masks[7][4:, 5:] = True
    (tmp_path / "masks" / "clip").mkdir(parents=True)
    write_indexed_png(tmp_path / "masks" / "clip" / "00004.png", masks, (6, 8))
    prompts = FirstFrameMasks(tmp_path / "masks").prompts_for(video)
    assert [(p.obj_id, p.frame) for p in prompts] == [(3, 4), (7, 4)]
    assert all(np.array_equal(p.mask, masks[p.obj_id]) for p in prompts)
    with pytest.raises(InputError, match="no first-frame mask for 'other'"):
        FirstFrameMasks(tmp_path / "masks").prompts_for(VideoInput("other", tmp_path))
