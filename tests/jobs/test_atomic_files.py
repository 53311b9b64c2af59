"""Files streamseg writes get the umask's mode (``0666 & ~umask``), as ``open()`` gives.

Each case runs under umask 0o022 and 0o002 (set in-process, restored after) and checks the
``st_mode`` of every file written: tracks.json (once created 0600 by NamedTemporaryFile), the
atomic-writer helper, each exporter and the storage writers of queue jobs.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from jobs.atomic_files import atomic_writer, current_umask, plain_file_mode
from jobs.exports import FrameMasks
from jobs.exports.cvat import write_cvat_video
from jobs.exports.davis_png import write_davis_pngs
from jobs.exports.mot import write_mot
from jobs.exports.ytvis import write_ytvis
from jobs.media import ModelInfo, VideoInfo
from jobs.storage import open_location, put_file, write_bytes
from jobs.tracks import TracksWriter

UMASKS = [0o022, 0o002]


@pytest.fixture(params=UMASKS, ids=lambda m: f"umask{m:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under this umask; the previous one comes back afterwards."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def file_modes(folder: Path) -> dict[str, int]:
    """Permission bits of every regular file under ``folder`` (relative '/' paths)."""
    return {
        path.relative_to(folder).as_posix(): stat.S_IMODE(path.stat().st_mode)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_current_umask_reads_without_changing_it(umask: int) -> None:
    assert current_umask() == umask
    assert os.umask(umask) == umask  # it was left as it was
    assert plain_file_mode() == {0o022: 0o644, 0o002: 0o664}[umask]


def test_atomic_writer_mode_matches_plain_open(tmp_path: Path, umask: int) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    with atomic_writer(tmp_path / "atomic.txt", "w") as handle:
        handle.write("héllo")
    with atomic_writer(tmp_path / "atomic.bin") as handle:
        handle.write(b"\x00\x01")
    modes = file_modes(tmp_path)
    assert modes == {"atomic.bin": modes["plain.txt"], "atomic.txt": modes["plain.txt"],
                     "plain.txt": 0o666 & ~umask}  # fmt: skip
    assert (tmp_path / "atomic.txt").read_text(encoding="utf-8") == "héllo"


def test_atomic_writer_replaces_an_existing_file_with_the_plain_mode(tmp_path: Path, umask) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    target.chmod(0o600)
    with atomic_writer(target, "w") as handle:
        handle.write("new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_atomic_writer_failure_keeps_the_old_file_and_leaves_no_debris(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_writer(target, "w") as handle:
            handle.write("half a docu")
            raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_writer_refuses_other_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'wb' or 'w'"):
        with atomic_writer(tmp_path / "x", "a"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_tracks_json_and_its_spool_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    video = VideoInfo(width=8, height=6, fps=10.0)
    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True
    path = tmp_path / "tracks.json"
    with TracksWriter(path, video, ModelInfo(name="test")) as writer:
        writer.add(0, 1, mask, 2.5, True)
        assert file_modes(tmp_path) == {"tracks.json.spool": 0o666 & ~umask}
        writer.finish(num_frames=1)
    assert file_modes(tmp_path) == {"tracks.json": 0o666 & ~umask}


def test_every_exporter_writes_the_umask_mode(tmp_path: Path, umask: int) -> None:
    video = VideoInfo(width=8, height=6, fps=10.0, num_frames=2, source="v")
    mask = np.zeros((6, 8), bool)
    mask[2:4, 1:6] = True
    frames = [FrameMasks(0, {1: mask}, {1: 0.9}), FrameMasks(1, {1: ~mask}, {1: 0.8})]
    write_davis_pngs(tmp_path / "davis", video, frames)
    write_ytvis(tmp_path / "ytvis.json", video, frames)
    write_cvat_video(tmp_path / "annotations.xml", video, frames)
    write_mot(tmp_path / "mot.txt", video, frames)
    modes = file_modes(tmp_path)
    assert sorted(modes) == ["annotations.xml", "davis/00000.png", "davis/00001.png",
                             "mot.txt", "ytvis.json"]  # fmt: skip
    assert set(modes.values()) == {0o666 & ~umask}
    assert stat.S_IMODE((tmp_path / "davis").stat().st_mode) == 0o777 & ~umask


def test_storage_writers_of_queue_jobs_write_the_umask_mode(tmp_path: Path, umask: int) -> None:
    location = open_location(str(tmp_path / "job"))
    write_bytes(location, "manifest.json", b"{}")
    local = tmp_path / "local.bin"
    local.write_bytes(b"overlay")
    local.chmod(0o600)  # the copy must not inherit a private source's mode
    put_file(location, local, "overlay.mp4")
    assert file_modes(tmp_path / "job") == {
        "manifest.json": 0o666 & ~umask,
        "overlay.mp4": 0o666 & ~umask,
    }
