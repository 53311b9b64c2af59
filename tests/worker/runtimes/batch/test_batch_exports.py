"""``write_exports``: what cannot be exported fails first; nothing half-written is left."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from configs.errors import InputError
from jobs.media import ModelInfo, VideoInfo
from jobs.tracks import TracksWriter
from tests.conftest import frames_folder
from worker.cli import main
from worker.runtimes.batch.exports import ExportKind, write_exports

FRAMES = 4


def _tracks(folder: Path, ids: tuple[int, ...]) -> Path:
    """A real 8x6 tracks.json: each object a box on every frame."""
    folder.mkdir(parents=True, exist_ok=True)
    with TracksWriter(
        folder / "tracks.json", VideoInfo(8, 6, 10.0), ModelInfo(name="test")
    ) as writer:
        for frame in range(FRAMES):
            for position, obj_id in enumerate(ids):
                mask = np.zeros((6, 8), dtype=bool)
                mask[position : position + 2, frame : frame + 3] = True
                writer.add(frame, obj_id, mask, 1.0, True)
        writer.finish(FRAMES)
    return folder / "tracks.json"


def test_an_id_beyond_the_png_palette_fails_before_any_file(tmp_path: Path) -> None:
    _tracks(tmp_path, (1, 300))
    with pytest.raises(InputError, match=r"object id 300 does not fit an indexed PNG \(1\.\.254"):
        write_exports(tmp_path, [ExportKind.MOT, ExportKind.DAVIS])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tracks.json"]
    assert [p.name for p in write_exports(tmp_path, [ExportKind.MOT])] == ["mot.txt"]


@pytest.mark.parametrize("kind", [ExportKind.DAVIS, ExportKind.YTVIS, ExportKind.MOT])
def test_a_mask_that_fails_to_decode_leaves_no_partial_export(tmp_path: Path, kind) -> None:
    """Frame 2's RLE is damaged: frames 0-1 were written when it fails; they go too."""
    path = _tracks(tmp_path, (1,))
    document = json.loads(path.read_text())
    document["objects"][0]["frames"][2]["rle"]["counts"] = "\x7f!!"
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match=r"object 1 frame 2: invalid COCO RLE mask"):
        write_exports(tmp_path, [kind])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tracks.json"]


def test_annotate_refuses_a_davis_id_before_tracking(davis_root: Path, tmp_path: Path, capsys):
    """Object 300 with --export davis fails at once, not after the whole video was tracked."""
    frames_folder(tmp_path / "in" / "bear", davis_root / "JPEGImages" / "bear", 0, 3)
    prompts = {"bear": [{"object": 300, "box": [360, 200, 440, 280]}]}
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    argv = ["annotate", tmp_path / "in", "--prompts", tmp_path / "prompts.json",
            "--out", tmp_path / "out", "--export", "davis", "--quiet",
            "--model", "lite", "--image-size", "240"]  # fmt: skip
    assert main([str(arg) for arg in argv]) != 0
    out = capsys.readouterr().out
    assert "object id 300 does not fit an indexed PNG" in out
    assert not (tmp_path / "out" / "bear" / "tracks.json").exists()
    assert not (tmp_path / "out" / "bear" / "tracks.json.spool").exists()


def test_annotate_queue_refuses_a_davis_id_before_submitting(tmp_path: Path) -> None:
    """The job spec is built (and the ids checked) before anything reaches the queue:
    ``spec()`` never touches it, so no queue is given."""
    from worker.runtimes.batch.inputs import VideoInput
    from worker.runtimes.batch.prompt_sources import PromptsFile
    from worker.runtimes.batch.queued import QueuedBatch, QueueModel
    from worker.runtimes.batch.runner import BatchOptions

    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"bear": [{"object": 300, "box": [1, 2, 30, 40]}]}))
    model = QueueModel("lite", None, None, False)
    video = VideoInput("bear", tmp_path / "bear.mp4")
    davis, mot = (ExportKind.TRACKS, ExportKind.DAVIS), (ExportKind.MOT,)
    for exports, fails in ((davis, True), (mot, False)):
        batch = QueuedBatch(None, PromptsFile.load(path), BatchOptions(tmp_path, exports), model)
        if fails:
            with pytest.raises(InputError, match="object id 300 does not fit an indexed PNG"):
                batch.spec(video)
        else:
            assert [p.object for p in batch.spec(video).prompts] == [300]
