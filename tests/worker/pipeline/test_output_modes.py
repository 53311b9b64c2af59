"""Every file a real ``streamseg annotate`` run leaves gets the umask's mode, as ``open()``.

tracks.json and annotate-manifest.json were created 0600 whatever the umask (NamedTemporaryFile
and mkstemp before the rename), so a teammate could not read results on shared storage. The
run is real: the weights-included ``lite`` engine on 3 DAVIS frames, every export.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.conftest import frames_folder
from tests.jobs.test_atomic_files import file_modes, umask  # noqa: F401 (fixture)
from worker.cli import main
from worker.runtimes.batch.manifest import MANIFEST_FILE

EXPECTED_FILES = [
    MANIFEST_FILE, "annotations.xml", "davis/00000.png", "davis/00001.png", "davis/00002.png",
    "mot.txt", "overlay.mp4", "tracks.json", "ytvis.json",
]  # fmt: skip


@pytest.mark.usefixtures("umask")  # 0o022, then 0o002
def test_annotate_outputs_get_the_mode_open_gives(davis_root: Path, tmp_path: Path, capsys) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("")  # what a teammate expects: the mode open() gives a new file
    expected = stat.S_IMODE(plain.stat().st_mode)
    assert expected in (0o644, 0o664)
    frames_folder(tmp_path / "in" / "bear", davis_root / "JPEGImages" / "bear", 0, 3)
    (tmp_path / "prompts.yaml").write_text('{"bear": [{"object": 1, "box": [360, 200, 440, 280]}]}')
    argv = ["annotate", tmp_path / "in", "--prompts", tmp_path / "prompts.yaml",
            "--out", tmp_path / "out", "--export", "all", "--quiet",
            "--model", "lite", "--image-size", "240"]  # fmt: skip
    assert main([str(arg) for arg in argv]) == 0, capsys.readouterr().err
    modes = file_modes(tmp_path / "out" / "bear")
    assert sorted(modes) == EXPECTED_FILES  # and no temporary file left behind
    assert modes == {name: expected for name in EXPECTED_FILES}
