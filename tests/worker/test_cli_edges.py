"""``streamseg segment`` at its edges, each case a real ``python -m worker.cli`` process.

Bad outputs, prompt files, frame counts, checkpoints and devices: exit 2, exactly one line
on stderr, no traceback, no result and no debris left. Stop signals and earlier killed runs:
no partial file survives. Inputs are made in the test (PyAV, numpy); the model is the lite
engine at a small size, or the random SAM 2 checkpoint where a checkpoint is the subject.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from jobs.tracks import read_tracks
from tests.conftest import TEST_MODEL
from tests.support.waiting import blocked_opening_a_fifo, signal_when_ready

ROOT = Path(__file__).resolve().parents[2]
LITE = ["--model", "lite", "--image-size", "64"]
RESULTS = ("tracks.json", "overlay.mp4")


# ----- helpers ---------------------------------------------------------------------------
def streamseg_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "worker.cli", *map(str, args)]


# root without the capabilities that override file permissions: a folder's mode applies
WITHOUT_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def run_streamseg(*args: str, without_override: bool = False, timeout: float = 600):
    """``streamseg ARGS`` in a subprocess; ``without_override``: as a user whose access is
    decided by file modes (root minus CAP_DAC_OVERRIDE, or not root at all)."""
    prefix = WITHOUT_OVERRIDE if without_override and os.geteuid() == 0 else []
    return subprocess.run(
        prefix + streamseg_command(*args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONDONTWRITEBYTECODE="1")


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert "error: " in lines[0] and fragment in lines[0], lines[0]


def message_lines(stderr: str) -> list[str]:
    """stderr without the progress bar's redraws (text mode reads its carriage returns as
    line ends): the lines a user reads once the bar is gone."""
    return [
        line for line in stderr.splitlines() if line.strip() and not line.startswith("segment:")
    ]


def leftovers(folder: Path, before: set[str] = frozenset()) -> set[str]:
    """Names in ``folder`` that were not there ``before`` (results, partials, spools)."""
    if not folder.is_dir():
        return set()
    return {entry.name for entry in folder.iterdir()} - set(before)


def write_clip(path: Path, frames: int, size: tuple[int, int] = (96, 64)) -> Path:
    """An H.264 clip of a red block moving right on grey; (width, height) = ``size``."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            rgb = np.full((height, width, 3), 60, np.uint8)
            x = 8 + index % (width - 40)
            rgb[20:44, x : x + 24] = (220, 30, 30)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def clip_pair(folder: Path, suffix: str, long: int) -> dict[str, Path]:
    """{"short": a 24-frame clip, "long": a ``long``-frame one}, in ``suffix``'s container."""
    return {
        "short": write_clip(folder / f"short{suffix}", 24),
        "long": write_clip(folder / f"long{suffix}", long),
    }


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    return clip_pair(tmp_path_factory.mktemp("clips"), ".mp4", long=2000)


@contextlib.contextmanager
def small_tmpfs(size: str, *options: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted for the test (root only); skips where it cannot be."""
    mount_point = Path(tempfile.mkdtemp(prefix="streamseg-tmpfs-"))
    spec = ",".join((f"size={size}", *options))
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", spec, "tmpfs", str(mount_point)], capture_output=True
    )
    if made.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()


def fill(folder: Path) -> None:
    """Write into ``folder`` until its file system is full."""
    block = b"\xff" * 65536
    with open(folder / "filler", "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(block)
    with open(folder / "filler", "ab", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\xff")  # the last partial block


# ----- output folders: refused before tracking starts -------------------------------------
def _existing_file(tmp: Path) -> Path:
    (tmp / "a-file").write_text("not a folder")
    return tmp / "a-file"


def _under_a_file(tmp: Path) -> Path:
    return _existing_file(tmp) / "out"


def _tracks_is_a_folder(tmp: Path) -> Path:
    (tmp / "out" / "tracks.json").mkdir(parents=True)
    return tmp / "out"


def _overlay_is_a_folder(tmp: Path) -> Path:
    (tmp / "out" / "overlay.mp4").mkdir(parents=True)
    return tmp / "out"


BAD_OUTPUTS = {
    "an existing file": (_existing_file, "exists and is not a folder"),
    "under a file": (_under_a_file, "part of its path is a file"),
    "/dev/full itself": (lambda t: Path("/dev/full"), "exists and is not a folder"),
    "under /dev/full": (lambda t: Path("/dev/full/out"), "part of its path is a file"),
    "under /proc": (lambda t: Path("/proc/streamseg-out"), "does not allow new folders"),
    "under /sys": (lambda t: Path("/sys/streamseg-out"), "cannot make output folder"),
    "tracks.json is a folder": (_tracks_is_a_folder, "tracks.json is a folder"),
    "overlay.mp4 is a folder": (_overlay_is_a_folder, "overlay.mp4 is a folder"),
}


@pytest.mark.parametrize("case", list(BAD_OUTPUTS))
def test_bad_output_folder_is_refused_before_tracking(case, clips, tmp_path):
    make_out, fragment = BAD_OUTPUTS[case]
    out = make_out(tmp_path)
    before = {p.name for p in tmp_path.iterdir()}
    result = run_streamseg("segment", clips["short"], "--out", out, "--point", "1:20,30", *LITE)
    assert_one_line_error(result, fragment)
    assert leftovers(tmp_path, before) == set()
    if out.is_dir() and out.parent == tmp_path:
        assert leftovers(out, {"tracks.json", "overlay.mp4"}) == set()
        assert not (out / "tracks.json").is_file() and not (out / "overlay.mp4").is_file()


def test_output_folder_holding_the_input_as_a_result_name_loses_nothing(clips, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    video = out / "overlay.mp4"
    shutil.copy(clips["short"], video)
    result = run_streamseg("segment", video, "--out", out, "--point", "1:20,30", *LITE)
    assert_one_line_error(result, "is one of the outputs")
    assert video.read_bytes() == clips["short"].read_bytes()


def test_read_only_folder_is_refused_for_a_user_without_root_override(clips, tmp_path):
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("root, and no setpriv to drop the permission override")
    probe = run_streamseg("--help", without_override=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"cannot run streamseg without the override: {probe.stderr[-200:]}")
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    folder.chmod(0o555)
    cases = {
        folder: f"output folder {folder} is not writable: Permission denied",
        folder / "sub": f"cannot make output folder {folder / 'sub'}: Permission denied",
    }
    try:
        for out, message in cases.items():
            result = run_streamseg(
                "segment", clips["short"], "--out", out, "--point", "1:20,30", *LITE,
                without_override=True,
            )  # fmt: skip
            assert_one_line_error(result, message)
            assert leftovers(folder) == set()
    finally:
        folder.chmod(0o755)


def test_read_only_file_system_is_refused(clips):
    with small_tmpfs("1M", "ro") as mount:
        result = run_streamseg("segment", clips["short"], "--out", mount, "--point", "1:1,1", *LITE)
        assert_one_line_error(result, "Read-only file system")
        assert leftovers(mount) == set()


def test_full_file_system_is_refused_before_tracking(clips):
    with small_tmpfs("1M") as mount:
        fill(mount)
        result = run_streamseg(
            "segment", clips["short"], "--out", mount / "out", "--point", "1:20,30", *LITE
        )
        assert "No space left on device" in result.stderr or "KiB free" in result.stderr
        assert_one_line_error(result, str(mount / "out"))
        assert leftovers(mount) == {"filler"}


def test_disk_filling_up_during_the_run_ends_in_one_line_and_no_result(clips):
    with small_tmpfs("8M") as mount:
        out = mount / "out"
        process = start_segment(clips["long"], out)
        wait_for_progress(process)
        fill(mount)  # every later write fails: the spool, the encoder, tracks.json
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 2, stderr
        assert message_lines(stderr) == [stderr.strip().splitlines()[-1]], stderr
        last = message_lines(stderr)[0]
        assert last.startswith("streamseg: error: cannot write the results to ")
        assert last.endswith("No space left on device"), last
        assert leftovers(out) == set()


# ----- stop signals, killed runs and their debris -----------------------------------------
def start_segment(clip: Path, out: Path) -> subprocess.Popen:
    """A segment run with its progress bar on stderr (read by :func:`wait_for_progress`)."""
    return subprocess.Popen(
        streamseg_command("segment", clip, "--out", out, "--point", "1:20,30", *LITE),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


# frames after which the overlay's file exists: PyAV creates it with the first packet, which
# x264 holds back for its lookahead (tens of frames)
ENCODER_STARTED = 80


def wait_for_progress(process: subprocess.Popen, frames: int = 2) -> None:
    """Block until the progress bar shows ``frames`` tracked frames (or the process ends)."""
    seen, deadline = "", time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 5)
        if not ready:
            assert process.poll() is None, seen
            continue
        chunk = os.read(process.stderr.fileno(), 4096).decode(errors="replace")
        assert chunk, f"streamseg ended before tracking: {seen}"
        seen += chunk
        done = [int(n) for n in re.findall(r" (\d+)/2000 ", seen)]
        if done and max(done) >= frames:
            return
    pytest.fail(f"no progress within 600 s: {seen[-500:]}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stop_signal_leaves_no_partial_file(signum, clips, tmp_path):
    out = tmp_path / "out"
    process = start_segment(clips["long"], out)
    wait_for_progress(process, ENCODER_STARTED)
    assert {"tracks.json.spool", f".overlay.mp4.{process.pid}.partial"} <= leftovers(out)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signum, stderr
    assert len(message_lines(stderr)) == 1, stderr
    assert "no output was marked complete" in message_lines(stderr)[0]
    assert leftovers(out) == set()


def test_under_nohup_a_hangup_is_ignored_and_sigterm_still_stops(clips, tmp_path):
    """``nohup streamseg ...``: started with SIGHUP ignored, the run keeps it ignored (the
    terminal closing does not stop it), and SIGTERM still stops it cleanly."""
    out = tmp_path / "out"
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # inherited across exec, as nohup
    try:
        process = start_segment(clips["long"], out)
    finally:
        signal.signal(signal.SIGHUP, previous)
    wait_for_progress(process, ENCODER_STARTED)
    process.send_signal(signal.SIGHUP)
    wait_for_progress(process, ENCODER_STARTED + 10)  # still tracking
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in message_lines(stderr)[0]
    assert leftovers(out) == set()


@pytest.mark.parametrize(
    ("redirect", "code", "message"),
    [
        ("2>&-", 0, None),  # a daemon with stderr closed
        ("2>/dev/full", 0, None),  # a full log volume: the progress bar cannot be written
        ("1>&-", 0, None),
        (">/dev/full", 2, "streamseg: error: cannot write the output: No space left on device"),
    ],
    ids=["stderr-closed", "stderr-full", "stdout-closed", "stdout-full"],
)
def test_unusable_standard_streams_do_not_stop_the_work(redirect, code, message, clips, tmp_path):
    """Progress and messages are for a person watching: a closed or failing stderr is
    skipped and the run completes; stdout carries the result summary, so failing to write
    it is one line and status 2 (the results themselves are complete either way)."""
    out = tmp_path / "out"
    command = streamseg_command(
        "segment", clips["short"], "--out", out, "--point", "1:20,30", *LITE
    )
    result = subprocess.run(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", *command], cwd=ROOT, capture_output=True,
        text=True, env=_env(), timeout=600,
    )  # fmt: skip
    stderr = result.stderr
    assert result.returncode == code, stderr
    assert "Traceback" not in stderr
    if message is not None:
        assert message_lines(stderr) == [message]
    assert leftovers(out) == set(RESULTS)
    assert read_tracks(out / "tracks.json", finished=True).video.num_frames == 24


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("run", [True, False], ids=["segment-run", "help"])
def test_a_closed_stdout_ends_the_command_quietly(run, unbuffered, clips, tmp_path):
    """``streamseg segment ... | head``: stdout's reader is gone before the closing summary
    (or the help text). The command exits 128 + SIGPIPE with no traceback or "Exception
    ignored" on stderr, and a run's results are complete (written before the summary);
    whether Python buffers stdout or not."""
    out = tmp_path / "out"
    argv = ["segment", clips["short"], "--out", out, "--point", "1:20,30", *LITE]
    argv = argv if run else ["segment", "--help"]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone: every write gets EPIPE
    try:
        result = subprocess.run(
            streamseg_command(*argv), cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE,
            text=True, env=dict(_env(), PYTHONUNBUFFERED=unbuffered), timeout=600,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert result.returncode == 128 + signal.SIGPIPE, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    if not run:
        return
    assert leftovers(out) == set(RESULTS)
    assert read_tracks(out / "tracks.json", finished=True).video.num_frames == 24


@pytest.mark.parametrize(
    ("signum", "message"),
    [
        (signal.SIGTERM, "streamseg: stopped by SIGTERM; no output was marked complete"),
        (signal.SIGINT, "streamseg: interrupted; no output was marked complete"),
    ],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_stop_while_waiting_for_a_fifo_is_a_stop_not_a_bad_video(signum, message, tmp_path):
    """A FIFO with no writer blocks the open; a stop signal then makes FFmpeg's call return
    EINTR, and PyAV raises its own error in place of the handler's. That is reported as the
    stop it was, with 128 + the signal, not as "not a readable video" (status 2)."""
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    process = subprocess.Popen(
        streamseg_command("segment", fifo, "--out", out, "--point", "1:20,30", *LITE),
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    _, stderr = signal_when_ready(
        process, lambda: blocked_opening_a_fifo(process.pid), signum,
        "streamseg to block opening the FIFO", ready_s=300, exit_s=120,
    )  # fmt: skip
    assert process.returncode == 128 + signum, stderr
    assert message_lines(stderr) == [message]
    assert leftovers(out) == set()


def _oversized_mjpeg(path: Path, width: int, height: int) -> Path:
    """Two flat frames of MJPEG: a few hundred KB on disk, ``width`` x ``height`` decoded."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        frame = av.VideoFrame(width, height, "yuvj420p")
        for plane in frame.planes:
            plane.update(bytes([128]) * plane.buffer_size)
        for pts in range(2):
            frame.pts = pts
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _oversized_folder(path: Path, width: int, height: int) -> Path:
    path.mkdir()
    Image.new("RGB", (width, height), (90, 120, 150)).save(path / "00000.png")
    return path


@pytest.mark.parametrize("make", [_oversized_mjpeg, _oversized_folder], ids=["mjpeg", "images"])
def test_a_source_over_the_frame_size_limit_is_refused_at_once(make, tmp_path):
    """A small file that decodes to huge frames (12000 x 12000 MJPEG took a lite run past
    24 GB and was OOM-killed): refused with one line before a model loads, nothing left."""
    from configs.models import MAX_SOURCE_PIXELS

    width, height = 8200, 4400  # just over 8192 x 4320 in area
    assert width * height > MAX_SOURCE_PIXELS
    suffix = ".mkv" if make is _oversized_mjpeg else ""
    source = make(tmp_path / f"huge{suffix}", width, height)
    out = tmp_path / "out"
    result = run_streamseg("segment", source, "--out", out, "--point", "1:20,30", *LITE)
    assert_one_line_error(result, f"is {width}x{height} (36.1 MP): frames over 35.4 MP")
    assert leftovers(out) == set()


def test_a_run_removes_the_debris_of_killed_runs(clips, tmp_path):
    out = tmp_path / "out"
    killed = start_segment(clips["long"], out)
    wait_for_progress(killed, ENCODER_STARTED)
    killed.kill()  # SIGKILL: no cleanup can run
    killed.communicate(timeout=120)
    debris = leftovers(out)
    assert f".overlay.mp4.{killed.pid}.partial" in debris and "tracks.json.spool" in debris
    (out / ".tracks.json.k2j4l.tmp").write_bytes(b"{")  # the atomic writer's temporary
    (out / ".tracks-abc123").mkdir()  # tracks assembly scratch
    (out / ".tracks-abc123" / "1.jsonl").write_text("{}\n")
    alive = out / f".overlay.mp4.{os.getpid()}.partial"  # a running process's: kept
    alive.write_bytes(b"")
    (out / "notes.txt").write_text("the user's own file")
    result = run_streamseg("segment", clips["short"], "--out", out, "--point", "1:20,30", *LITE)
    assert result.returncode == 0, result.stderr
    assert leftovers(out) == {"tracks.json", "overlay.mp4", "notes.txt", alive.name}


def test_resumed_run_keeps_its_spool(tmp_path):
    """Debris removal spares the spool a crash-resume continues from (and only then)."""
    from worker.pipeline.output_dir import remove_debris

    names = ("tracks.json", "overlay.mp4")
    for keep in (True, False):
        (tmp_path / "tracks.json.spool").write_text("spool")
        (tmp_path / ".overlay.mp4.4194305.partial").write_text("")  # above pid_max: dead
        removed = {p.name for p in remove_debris(tmp_path, names, keep_spool=keep)}
        assert ".overlay.mp4.4194305.partial" in removed
        assert ("tracks.json.spool" in removed) is not keep
        assert (tmp_path / "tracks.json.spool").exists() is keep


# ----- prompts files ----------------------------------------------------------------------
def _deep_json(tmp: Path) -> Path:
    path = tmp / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


def _deep_but_parseable(tmp: Path) -> Path:
    path = tmp / "deep50.json"
    path.write_text('{"prompts": ' + "[" * 50 + "]" * 50 + "}")
    return path


def _latin1(tmp: Path) -> Path:
    path = tmp / "latin1.json"
    path.write_bytes('{"prompts": [{"object": 1, "box": [0, 0, 5, 5], "é": 1}]}'.encode("cp1252"))
    return path


def _document(name: str, text: str):
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_text(text)
        return path

    return make


def _entry(**entry) -> str:
    return json.dumps({"prompts": [entry]}, allow_nan=True)


def _yaml_bomb(tmp: Path) -> Path:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    lines += ["prompts: [{object: 1, box: *a8}]"]
    path = tmp / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _too_big(tmp: Path) -> Path:
    path = tmp / "big.json"
    with open(path, "wb") as handle:
        handle.truncate((16 << 20) + 1)  # sparse: no disk used
    return path


BAD_PROMPT_FILES = {
    "deeply nested JSON": (_deep_json, "nested too deeply"),
    "nested past the depth limit": (_deep_but_parseable, "nested more than 32 levels"),
    "not UTF-8": (_latin1, "is not UTF-8 text"),
    "endless (/dev/zero)": (lambda t: Path("/dev/zero"), "larger than 16 MiB"),
    "too large": (_too_big, "larger than 16 MiB"),
    "a folder": (lambda t: t, "is a folder"),
    "object true": (
        _document("p.json", _entry(object=True, box=[0, 0, 5, 5])),
        "prompts.0.object: Input should be a whole number, not true/false",
    ),
    "object as text": (
        _document("p.json", _entry(object="1", box=[0, 0, 5, 5])),
        "prompts.0.object",
    ),
    "frame as float": (
        _document("p.json", _entry(object=1, frame=1.5, box=[0, 0, 5, 5])),
        "prompts.0.frame",
    ),
    "label true": (
        _document("p.json", _entry(object=1, points=[[1, 1]], labels=[True])),
        "prompts.0.labels",
    ),
    "NaN coordinate": (
        _document("p.json", '{"prompts": [{"object": 1, "points": [[NaN, 3]]}]}'),
        "NaN is not a number a prompt can use",
    ),
    "Infinity coordinate": (
        _document("p.json", '{"prompts": [{"object": 1, "box": [0, 0, Infinity, 4]}]}'),
        "Infinity is not a number",
    ),
    "boolean coordinate": (
        _document("p.json", _entry(object=1, box=[0, 0, True, 4])),
        "prompts.0.box",
    ),
    "YAML .nan coordinate": (
        _document("p.yaml", "prompts: [{object: 1, points: [[.nan, 3]]}]\n"),
        "finite number",
    ),
    "YAML alias bomb": (_yaml_bomb, "more than 1000000 values"),
    "YAML deeply nested": (_document("d.yaml", "[" * 5000 + "]" * 5000), "nested"),
    "YAML syntax": (_document("s.yaml", "prompts: [\n"), "cannot parse prompts file"),
    "huge object id": (
        _document("p.json", _entry(object=2**40, box=[0, 0, 5, 5])),
        "prompts.0.object",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PROMPT_FILES))
def test_bad_prompt_file_fails_in_one_line(case, clips, tmp_path):
    make_file, fragment = BAD_PROMPT_FILES[case]
    prompts = make_file(tmp_path)
    out = tmp_path / "out"
    result = run_streamseg("segment", clips["short"], "--out", out, "--prompts", prompts, *LITE)
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_yaml_prompt_file_runs(clips, tmp_path):
    prompts = tmp_path / "p.yml"
    prompts.write_text("prompts:\n  - {object: 3, frame: 0, points: [[20, 30]], labels: [1]}\n")
    out = tmp_path / "out"
    result = run_streamseg("segment", clips["short"], "--out", out, "--prompts", prompts, *LITE)
    assert result.returncode == 0, result.stderr
    objects = json.loads((out / "tracks.json").read_text())["objects"]
    assert [o["id"] for o in objects] == [3] and len(objects[0]["frames"]) == 24


# ----- frame counts, flags ----------------------------------------------------------------
FRAME_CASES = {
    "prompt past the end": (["--point", "1:20,30@30"], "the video has only 24 frames (0 to 23)"),
    "prompt beyond --max-frames": (
        ["--point", "1:20,30@10", "--max-frames", "5"],
        "beyond --max-frames 5 (frames 0 to 4 are tracked)",
    ),
    "past the end and --max-frames": (
        ["--point", "1:20,30@40", "--max-frames", "30"],
        "the video has only 24 frames",
    ),
    "--max-frames 0": (["--point", "1:20,30", "--max-frames", "0"], "must be at least 1, got 0"),
    "--max-frames -3": (["--point", "1:20,30", "--max-frames", "-3"], "must be at least 1"),
    "--max-frames x": (["--point", "1:20,30", "--max-frames", "x"], "expected a whole number"),
    "--image-size 0": (["--point", "1:20,30", "--image-size", "0"], "--image-size: must be"),
    "point NaN": (["--point", "1:nan,3"], "finite numbers"),
    "mask path with @ missing": (["--mask", "1:masks@2x/m.png"], "masks@2x/m.png"),
    "--device tpu9": (["--point", "1:20,30", "--device", "tpu9"], "expected cpu, cuda"),
    "--device cuda:x": (["--point", "1:20,30", "--device", "cuda:x"], "expected cpu, cuda"),
    "unknown flag": (["--point", "1:20,30", "--colour", "red"], "unrecognized arguments"),
}


@pytest.mark.parametrize("case", list(FRAME_CASES))
def test_bad_flags_and_frames_fail_before_tracking(case, clips, tmp_path):
    extra, fragment = FRAME_CASES[case]
    out = tmp_path / "out"
    result = run_streamseg("segment", clips["short"], "--out", out, *LITE, *extra)
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_lite_refuses_a_gpu_device(clips, tmp_path):
    out = tmp_path / "out"
    result = run_streamseg(
        "segment", clips["short"], "--out", out, "--point", "1:20,30", *LITE, "--device", "cuda"
    )
    assert_one_line_error(result, "'lite' model runs on the CPU only")
    assert not out.exists()


def test_mask_path_with_at_sign_and_frame(clips, tmp_path):
    folder = tmp_path / "masks@2x"
    folder.mkdir()
    mask = np.zeros((64, 96), np.uint8)
    mask[20:44, 10:34] = 255
    Image.fromarray(mask).save(folder / "m@1.png")
    out = tmp_path / "out"
    flag = f"1:{folder / 'm@1.png'}@3"  # a frame after a path that holds @ twice
    result = run_streamseg("segment", clips["short"], "--out", out, "--mask", flag, *LITE)
    assert result.returncode == 0, result.stderr
    frames = json.loads((out / "tracks.json").read_text())["objects"][0]["frames"]
    assert frames[0]["frame"] == 3


@pytest.fixture(scope="module")
def hundred_megapixel_png(tmp_path_factory) -> Path:
    """A 10000 x 10000 black PNG (100 KB): over Pillow's 89 MP warning, under its 179 MP
    error, so Pillow alone would only print a DecompressionBombWarning."""
    path = tmp_path_factory.mktemp("bombs") / "big.png"
    Image.new("L", (10_000, 10_000)).save(path)
    return path


def _as_mask(png: Path, tmp: Path, clip: Path) -> list:
    return [clip, "--mask", f"1:{png}"]


def _as_frame_folder(png: Path, tmp: Path, clip: Path) -> list:
    folder = tmp / "frames"
    folder.mkdir()
    (folder / "00000.png").symlink_to(png)
    return [folder, "--point", "1:2,2"]


@pytest.mark.parametrize("use", [_as_mask, _as_frame_folder], ids=["mask", "frame folder"])
def test_an_image_over_pillows_bomb_warning_is_one_line(
    use, hundred_megapixel_png, clips, tmp_path
):
    """Refused in one line at its header, with no DecompressionBombWarning beside it."""
    out = tmp_path / "out"
    args = use(hundred_megapixel_png, tmp_path, clips["short"])
    result = run_streamseg("segment", *args, "--out", out, "--quiet", *LITE)
    assert_one_line_error(result, "decompression bomb")
    assert "Warning" not in result.stderr
    assert leftovers(out) == set()


# ----- checkpoints ------------------------------------------------------------------------
def _text_checkpoint(tmp: Path) -> Path:
    (tmp / "weights.pt").write_text("definitely not weights\n")
    return tmp / "weights.pt"


def _png_checkpoint(tmp: Path) -> Path:
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp / "weights.pt", format="PNG")
    return tmp / "weights.pt"


def _truncated_checkpoint(tmp: Path, real: Path) -> Path:
    (tmp / "cut.pt").write_bytes(real.read_bytes()[:100_000])
    return tmp / "cut.pt"


CHECKPOINTS = {
    "a text file": (lambda t, c: _text_checkpoint(t), "is not a PyTorch checkpoint"),
    "an image": (lambda t, c: _png_checkpoint(t), "is not a PyTorch checkpoint"),
    "a folder": (lambda t, c: t, "is a folder, not a checkpoint file"),
    "an empty file": (lambda t, c: _write(t / "empty.pt", b""), "is empty"),
    "missing": (lambda t, c: t / "nope.pt", "no such checkpoint"),
    "/dev/null": (lambda t, c: Path("/dev/null"), "is not a regular file"),
    "truncated": (_truncated_checkpoint, "cannot read checkpoint"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(CHECKPOINTS))
def test_bad_checkpoint_says_why_in_one_line(case, clips, sam2_checkpoint, tmp_path):
    make, fragment = CHECKPOINTS[case]
    checkpoint = make(tmp_path, sam2_checkpoint)
    out = tmp_path / "out"
    result = run_streamseg(
        "segment", clips["short"], "--out", out, "--point", "1:20,30", "--quiet",
        "--model", TEST_MODEL, "--checkpoint", checkpoint, "--device", "cpu",
    )  # fmt: skip
    assert_one_line_error(result, fragment)
    assert not out.exists()
