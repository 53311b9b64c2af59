"""The queue's parts without a worker: spec, storage and manifest, checkpoints, the client."""

from __future__ import annotations

import json
import re
from pathlib import Path

import fsspec
import numpy as np
import pytest

from configs.errors import InputError, TransientError
from configs.settings import QueueSettings
from jobs.dead_letter import DeadLetter, find_dead_letter, move_aside, read_dead_letters
from jobs.prompts import Prompt
from jobs.queue import JobQueue
from jobs.redis_keys import job_cancel_key
from jobs.spec import parse_spec, prompt_to_spec
from jobs.storage import (
    MANIFEST_NAME,
    Retrier,
    fetch_input,
    open_location,
    publish,
    read_manifest,
    verify,
)
from tests.jobs.conftest import unique_queue
from worker.runtimes.queue.job_checkpoint import CheckpointState, CheckpointStore, SpoolPart, _cut
from worker.runtimes.queue.rq_hooks import classify

SPEC = {"source": "/v.mp4", "output": "/out", "prompts": [{"object": 1, "box": [0, 0, 5, 5]}]}


# --- spec ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"model": "sam9"}, "model: Value error, unknown model 'sam9'"),
        ({"prompts": []}, "prompts: List should have at least 1 item"),
        ({"prompts": [{"object": 1, "mask": "m.png"}]}, "must be a data: URL"),
        ({"outputs": []}, "at least one output"),
        ({"image_size": 8}, "image_size: Input should be greater than or equal to 64"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_invalid_specs_are_refused_with_a_reason(change, words):
    with pytest.raises(InputError, match="invalid job spec") as error:
        parse_spec({**SPEC, **change})
    assert words in str(error.value)


def test_mask_prompts_travel_inline(tmp_path):
    mask = np.zeros((6, 9), bool)
    mask[2:4, 3:8] = True
    spec = parse_spec({**SPEC, "prompts": [prompt_to_spec(Prompt(4, 2, mask=mask))]})
    data = json.loads(spec.model_dump_json())  # what Redis holds
    assert data["prompts"][0]["mask"].startswith("data:image/png;base64,")
    assert parse_spec(data).digest() == spec.digest()


# --- storage -------------------------------------------------------------------------------


def test_publish_writes_the_manifest_last_and_verifies(tmp_path):
    files = [tmp_path / "tracks.json", tmp_path / "overlay.mp4"]
    files[0].write_text('{"a": 1}')
    files[1].write_bytes(b"\0" * 1000)
    location = open_location("memory://results/job-1")
    manifest = publish(location, files, job_id="j1", spec_digest="d", num_frames=3,
                       object_ids=[1], retrier=Retrier(1, 0))  # fmt: skip
    assert read_manifest(location) == manifest
    verify(location, manifest)
    location.fs.pipe_file(location.path("overlay.mp4"), b"\1" * 1000)
    with pytest.raises(InputError, match="checksum mismatch"):
        verify(location, manifest)

    blocked = tmp_path / "blocked"
    (blocked / "overlay.mp4").mkdir(parents=True)  # the second upload cannot succeed
    with pytest.raises(InputError):
        publish(open_location(str(blocked)), files, job_id="j2", spec_digest="d",
                num_frames=3, object_ids=[1], retrier=Retrier(1, 0))  # fmt: skip
    assert (blocked / "tracks.json").exists() and not (blocked / MANIFEST_NAME).exists()


def test_retrier_backs_off_on_transient_errors_only():
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset by peer")
        return "ok"

    assert Retrier(attempts=3, backoff_s=0.01).call("read", flaky) == "ok"
    with pytest.raises(TransientError, match="read: TimeoutError"):
        Retrier(attempts=2, backoff_s=0.01).call("read", _raise(TimeoutError("slow")))
    with pytest.raises(InputError, match="read: FileNotFoundError"):
        Retrier(attempts=5, backoff_s=10).call("read", _raise(FileNotFoundError("gone")))
    with pytest.raises(InputError, match="write: OSError"):  # read-only filesystem: at once
        Retrier(attempts=5, backoff_s=10).call("write", _raise(OSError(30, "Read-only")))


def _raise(error: Exception):
    def operation():
        raise error

    return operation


def test_fsspec_inputs_are_fetched(tmp_path):
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/inputs/clip/00000.jpg", b"jpeg-0")
    fs.pipe_file("/inputs/clip/00001.jpg", b"jpeg-1")
    fs.pipe_file("/inputs/video.mp4", b"mp4")
    retrier = Retrier(1, 0)
    folder = Path(fetch_input("memory://inputs/clip", tmp_path / "a", retrier))
    assert sorted(p.name for p in folder.iterdir()) == ["00000.jpg", "00001.jpg"]
    assert (
        Path(fetch_input("memory://inputs/video.mp4", tmp_path / "b", retrier)).read_bytes()
        == b"mp4"
    )
    assert fetch_input("/local/video.mp4", tmp_path, retrier) == "/local/video.mp4"
    with pytest.raises(InputError, match="cannot read memory://inputs/none.mp4"):
        fetch_input("memory://inputs/none.mp4", tmp_path / "c", retrier)


# --- checkpoints ---------------------------------------------------------------------------


def test_spool_parts_are_cut_back_to_the_resumed_spool():
    parts = [SpoolPart(name="a", size=10), SpoolPart(name="b", size=5), SpoolPart(name="c", size=7)]
    assert _cut(parts, 22) == parts
    assert _cut(parts, 12) == [SpoolPart(name="a", size=10), SpoolPart(name="b", size=2)]
    assert _cut(parts, 10) == [SpoolPart(name="a", size=10)]
    assert _cut(parts, 0) == []


def test_checkpoint_store_commits_last_and_keeps_only_its_files():
    store = CheckpointStore(
        open_location("memory://ckpt/job-9/.streamseg-checkpoint"), Retrier(1, 0)
    )
    store.write("bank-old.pt", b"old")
    store.write("spool-1.part", b"12345")
    store.write("bank-new.pt", b"new")
    assert store.load("job-9", "digest") is None  # nothing committed yet
    part = SpoolPart(name="spool-1.part", size=5)
    state = CheckpointState(
        job_id="job-9", spec_digest="digest", frame=4, snapshot="bank-new.pt", spool=[part],
        saved_at="now",
    )  # fmt: skip
    store.commit(state)
    assert store.load("job-9", "digest") == state
    assert store.load("job-9", "other spec") is None and store.load("job-1", "digest") is None
    names = sorted(p.rsplit("/", 1)[1] for p in store.location.fs.ls(store.location.root, False))
    assert names == ["bank-new.pt", "spool-1.part", "state.json"]
    store.clear()
    assert not store.location.fs.exists(store.location.root)


def test_failures_are_classified():
    from rq.exceptions import AbandonedJobError, DeserializationError

    from configs.errors import VideoDecodeError
    from worker.pipeline.segment import Cancelled
    from worker.runtimes.queue.job_runner import WorkerStopping

    assert classify(Cancelled("cancelled at frame 3")).kind == "cancelled"
    assert classify(DeserializationError()).kind == "rejected"
    assert classify(VideoDecodeError("no such file: x")).kind == "input"
    assert classify(TransientError("s3 down")).kind == "transient"
    assert classify(ConnectionResetError("reset")).kind == "transient"
    assert classify(WorkerStopping("worker shutting down at frame 2")).kind == "interrupted"
    assert classify(AbandonedJobError()).kind == "lost"
    assert classify(OSError(30, "Read-only file system")).kind == "transient"
    assert classify(RuntimeError("bug")).model_dump() == {
        "kind": "internal",
        "message": "RuntimeError: bug",
    }


# --- the client against a real Redis -------------------------------------------------------


def test_client_submit_status_cancel_without_workers(redis_url, tmp_path):
    jobs = JobQueue.connect(QueueSettings(), redis_url, unique_queue())
    with pytest.raises(InputError, match="invalid job spec: model"):
        jobs.submit({**SPEC, "model": "nope"})
    assert jobs.queue.count == 0
    view = jobs.submit({**SPEC, "output": str(tmp_path / "out")}, job_id="job-a")
    assert (view.id, view.state, view.spec.output) == ("job-a", "queued", str(tmp_path / "out"))
    with pytest.raises(InputError, match="job job-a is queued, no result"):
        jobs.result("job-a")
    assert jobs.cancel("job-a").state == "canceled"
    assert jobs.redis.exists(job_cancel_key("job-a"))
    assert jobs.queue.count == 0
    with pytest.raises(InputError, match="already canceled"):
        jobs.cancel("job-a")
    with pytest.raises(InputError, match="no such job: job-zzz"):
        jobs.get("job-zzz")
    assert jobs.submit({**SPEC, "output": str(tmp_path)}, job_id="job-a").state == "queued"
    assert not jobs.redis.exists(job_cancel_key("job-a"))  # a reused id starts uncancelled
    with pytest.raises(InputError, match="bad job id '../x'"):
        jobs.submit(SPEC, job_id="../x")


def test_submit_sizes_the_timeout_without_opening_the_source(redis_url, bear_clip, tmp_path):
    """The client never decodes the video (slow, and the worker's business): the RQ timeout
    is the backstop unless the spec bounds the length; the worker applies the length rule."""
    from rq.job import Job
    from rq.serializers import JSONSerializer

    settings = QueueSettings()
    jobs = JobQueue.connect(settings, redis_url, unique_queue())

    def timeout_of(**change) -> int:
        spec = {**SPEC, "source": str(bear_clip), "output": str(tmp_path), **change}
        job_id = jobs.submit(spec).id
        return Job.fetch(job_id, connection=jobs.redis, serializer=JSONSerializer).timeout

    base, per_frame = settings.job_timeout_base_s, settings.job_timeout_per_frame_s
    assert timeout_of() == settings.job_timeout_unknown_s
    assert timeout_of(max_frames=2) == int(base + 2 * per_frame)
    assert timeout_of(source="https://example.invalid/v.mp4") == settings.job_timeout_unknown_s
    assert timeout_of(source=str(tmp_path / "not-there.mp4")) == settings.job_timeout_unknown_s
    assert timeout_of(timeout_s=77) == 77


def test_dead_letters_round_trip(redis_client):
    queue = unique_queue()
    redis_client.rpush("some-list", "bad/id", "other")
    letter = DeadLetter(entry="bad/id", source="some-list", reason="malformed", worker="w1")
    move_aside(redis_client, queue, letter, lambda pipe: pipe.lrem("some-list", 1, "bad/id"))
    assert redis_client.lrange("some-list", 0, -1) == [b"other"]
    found = find_dead_letter(redis_client, queue, "bad/id")
    assert (found.entry, found.source, found.reason, found.worker) == (
        "bad/id", "some-list", "malformed", "w1"
    )  # fmt: skip
    assert found.at  # stamped when moved
    assert find_dead_letter(redis_client, queue, "other") is None
    registry = DeadLetter(entry="job-1:exec-9", source="rq:wip:x", reason="r")
    move_aside(redis_client, queue, registry, lambda pipe: None)
    assert find_dead_letter(redis_client, queue, "job-1").source == "rq:wip:x"
    assert [d.entry for d in read_dead_letters(redis_client, queue)] == ["job-1:exec-9", "bad/id"]


@pytest.mark.parametrize(
    ("job_id", "words"),
    [("bad/id", "bad job id 'bad/id'"), ("../x", "bad job id '../x'"), ("nope-1", "no such job")],
)
def test_client_refuses_bad_or_unknown_ids_with_one_line(redis_url, job_id, words):
    jobs = JobQueue.connect(QueueSettings(), redis_url, unique_queue())
    for call in (jobs.get, jobs.cancel, jobs.result):
        with pytest.raises(InputError, match=re.escape(words)) as error:
            call(job_id)
        assert "\n" not in str(error.value)


def test_redis_passwords_are_masked_in_help():
    from configs.settings import redact_url

    assert redact_url("redis://:s3cret@db:6380/0") == "redis://:***@db:6380/0"
    assert redact_url("redis://user:s3cret@db/1") == "redis://user:***@db/1"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
