"""``streamseg submit`` and the queue commands' help stay light: no torch, sam2, OpenCV or PyAV
is imported on their path, and submit imports no numpy, PIL or fsspec either (checked in a fresh
interpreter, deterministically; the latency is measured in BENCHMARKS.md, not here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT
from tests.jobs.conftest import unique_queue

HEAVY = ("torch", "sam2", "cv2", "av")
# submit sends a spec: masks are encoded (numpy, PIL) and storage opened (fsspec) by the worker
HEAVY_FOR_SUBMIT = (*HEAVY, "numpy", "PIL", "fsspec")
PROBE = """
import contextlib, io, json, sys
from worker.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        status = main(sys.argv[1:])
    except SystemExit as done:
        status = done.code
print(json.dumps({"status": status, "stdout": out.getvalue(),
                  "heavy": [m for m in %r if m in sys.modules]}))
""" % (HEAVY_FOR_SUBMIT,)  # noqa: UP031


def _run_cli(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_submit_imports_no_model_video_array_or_storage_library(redis_url, tmp_path):
    from configs.settings import QueueSettings
    from jobs.queue import JobQueue

    queue = unique_queue()
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"never opened by submit")
    result = _run_cli("submit", str(video), "--out", str(tmp_path / "out"), "--point", "1:10,20",
                      "--box", "2:1,2,30,40@3", "--redis", redis_url, "--queue", queue)  # fmt: skip
    assert result["status"] == 0 and result["heavy"] == []
    job_id = result["stdout"].strip()
    view = JobQueue.connect(QueueSettings(), redis_url, queue).get(job_id)
    assert view.state == "queued"
    assert (view.spec.source, view.spec.output) == (str(video), str(tmp_path / "out"))
    assert [(p.object, p.frame) for p in view.spec.prompts] == [(1, 0), (2, 3)]


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("submit", ["default: redis://", "from $STREAMSEG_REDIS_URL", "default: 100, from"]),
        ("status", ["default: redis://", "default: streamseg, from $STREAMSEG_QUEUE"]),
        ("result", ["--json", "default: text"]),
        ("cancel", ["job id"]),
        ("worker", ["--devices", "STREAMSEG_ABANDONED_AFTER_S=", "STREAMSEG_MAINTENANCE_S=",
                    "default: 120 s", "exit status: 0 when asked to stop"]),
    ],
)  # fmt: skip
def test_queue_command_help_is_light_and_shows_defaults(command, words):
    result = _run_cli(command, "--help")
    assert result["status"] == 0 and set(result["heavy"]).isdisjoint(HEAVY)
    text = " ".join(result["stdout"].split())
    for word in words:
        assert word in text, (word, result["stdout"])


# the flags of the queue commands themselves (prompt and model flags are shared with segment)
OWN_FLAGS = {
    "submit": ["--no-overlay", "--no-tracks", "--max-frames", "--checkpoint-every", "--timeout",
               "--job-id", "--wait", "--quiet", "--redis", "--queue"],
    "status": ["--json", "--redis", "--queue"],
    "worker": ["--queue", "--redis", "--name", "--device", "--devices", "--stop-timeout",
               "--burst", "--max-jobs", "--wait-for-redis"],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(OWN_FLAGS))
def test_every_queue_flag_has_help_with_its_default(command):
    from worker.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if a.choices and command in a.choices)
    actions = {o: a for a in subparsers.choices[command]._actions for o in a.option_strings}
    for flag in OWN_FLAGS[command]:
        text = actions[flag].help or ""
        assert "default" in text or flag == "--job-id" and "random" in text, (flag, text)
