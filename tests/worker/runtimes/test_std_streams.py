"""The standard-stream guards, on real descriptors (pipes, /dev/full, closed fds)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.runtimes.std_streams import OutputFailed, QuietOnFailure, RaisingOnFailure

ROOT = Path(__file__).resolve().parents[3]


def test_quiet_on_failure_drops_writes_after_a_failure_and_discards_the_descriptor() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # EPIPE on every write (Python ignores SIGPIPE)
    stream = open(write_end, "w", buffering=1)  # noqa: SIM115 (closed below)
    quiet = QuietOnFailure(stream)
    assert quiet.write("progress\n") == len("progress\n")  # dropped, not raised
    assert quiet.stream is None
    assert os.path.samefile(f"/proc/self/fd/{write_end}", os.devnull)
    quiet.write("more\n")
    quiet.flush()
    stream.close()  # its buffer now flushes to /dev/null without an error


def test_quiet_on_failure_passes_writes_through_while_they_succeed() -> None:
    target = io.StringIO()
    quiet = QuietOnFailure(target)
    quiet.write("a line\n")
    quiet.flush()
    assert target.getvalue() == "a line\n" and quiet.stream is target
    assert QuietOnFailure(None).write("nowhere") == len("nowhere")


def test_raising_on_failure_tells_a_stdout_failure_apart() -> None:
    full = open("/dev/full", "w")  # noqa: SIM115 (its close fails too: closed below)
    stream = RaisingOnFailure(full)
    stream.write("summary\n")  # buffered
    with pytest.raises(OutputFailed) as info:
        stream.flush()
    with contextlib.suppress(OSError):
        full.close()
    assert isinstance(info.value.error, OSError) and info.value.error.errno == 28  # ENOSPC


@pytest.mark.parametrize("closed", [0, 1, 2])
def test_closed_standard_descriptors_are_reserved_before_files_open(tmp_path, closed) -> None:
    """With descriptor ``closed`` closed at start, a file opened later must not get it
    (C-level writes to that descriptor would land in the file)."""
    script = (
        "import os, sys; sys.path.insert(0, sys.argv[1]);"
        "from worker.runtimes.std_streams import reserve_standard_fds;"
        "reserve_standard_fds();"
        "fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT);"
        "os.write(fd, str(fd).encode())"
    )
    target = tmp_path / "file"
    result = subprocess.run(
        ["sh", "-c", f'exec "$@" {closed}>&-', "sh", sys.executable, "-c", script, ROOT, target],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert int(target.read_text()) > 2
