"""``honcho start`` with the project's Procfile brings up Redis and a worker that serve jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.jobs.conftest import ONE_FRAME_PROMPTS, free_port, model_args, wait_for


def test_honcho_stack_serves_submit_wait_result(bear_clip, sam2_checkpoint, tmp_path):
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "honcho").exists():
        pytest.skip("honcho is not installed (pip install honcho)")
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "STREAMSEG_REDIS_PORT": str(port),
        "STREAMSEG_REDIS_DIR": str(tmp_path),
        "STREAMSEG_WORK_DIR": str(tmp_path / "work"),
    }
    log = tmp_path / "honcho.log"
    with open(log, "wb") as handle:
        stack = subprocess.Popen(
            [str(bin_dir / "honcho"), "start"], cwd=PROJECT_ROOT, env=env, stdout=handle,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: b"Listening on streamseg" in log.read_bytes(), 60, "the worker")
        point = ONE_FRAME_PROMPTS[0]["points"][0]
        submit = subprocess.run(
            [str(bin_dir / "streamseg"), "submit", str(bear_clip), "--out", str(tmp_path / "out"),
             "--point", f"1:{point[0]},{point[1]}", "--max-frames", "2", "--wait", "--quiet",
             *model_args(sam2_checkpoint)],
            env={**env, "STREAMSEG_REDIS_URL": f"redis://127.0.0.1:{port}/0"},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert submit.returncode == 0, submit.stderr + log.read_text()
        job_id, *files = submit.stdout.split()
        assert files == [str(tmp_path / "out" / n) for n in ("tracks.json", "overlay.mp4")]
        assert (tmp_path / "out" / "manifest.json").exists()
        assert f"({job_id})" in log.read_text()  # served by the Procfile's worker
    finally:
        os.killpg(stack.pid, signal.SIGTERM)  # honcho and everything it started
        stack.wait(timeout=30)
