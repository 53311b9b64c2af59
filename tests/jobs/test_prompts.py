"""Prompt parsing and validation: flags, prompt files, merging, frame checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from configs.errors import InputError
from jobs.prompts import (
    Prompt,
    check_prompt_frames,
    check_prompt_timing,
    load_prompt_file,
    merge_prompts,
    parse_flag,
    read_prompt_document,
    validate_prompts,
)


@pytest.mark.parametrize(
    "kind, text, expected",
    [
        ("point", "1:10,20", Prompt(1, 0, points=((10.0, 20.0),), labels=(1,))),
        ("neg-point", "2:3.5,4@7", Prompt(2, 7, points=((3.5, 4.0),), labels=(0,))),
        ("box", "3:1,2,30,40@2", Prompt(3, 2, box=(1.0, 2.0, 30.0, 40.0))),
    ],
)
def test_flags_parse(kind, text, expected):
    got = parse_flag(kind, text)
    assert (got.obj_id, got.frame, got.points, got.labels, got.box) == (
        expected.obj_id, expected.frame, expected.points, expected.labels, expected.box,
    )  # fmt: skip


@pytest.mark.parametrize(
    "kind, text, message",
    [
        ("point", "10,20", "expected OBJ:VALUE"),
        ("point", "1:10", "expected 2 comma-separated numbers"),
        ("box", "1:1,2,3", "expected 4 comma-separated numbers"),
        ("point", "1:a,b", "expected 2"),
        ("mask", "1:/no/such.png", "no such mask file"),
    ],
)
def test_bad_flags_fail_in_one_line(kind, text, message):
    with pytest.raises(InputError, match=message) as error:
        parse_flag(kind, text)
    assert "\n" not in str(error.value)


def test_prompt_file_with_relative_mask(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:15] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    document = {"prompts": [
        {"frame": 0, "object": 1, "points": [[1, 2], [3, 4]], "labels": [1, 0]},
        {"frame": 2, "object": 2, "box": [0, 0, 10, 10]},
        {"frame": 0, "object": 3, "mask": "m.png"},
    ]}  # fmt: skip
    (tmp_path / "p.json").write_text(json.dumps(document))
    prompts = load_prompt_file(tmp_path / "p.json")
    assert [p.kind for p in prompts] == ["points", "box", "mask"]
    assert prompts[0].labels == (1, 0) and prompts[2].mask.sum() == 50


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"object": 1}, "needs points, a box or a mask"),
        ({"object": 1, "points": []}, "needs points, a box or a mask"),
        ({"object": 1, "points": [[1, 2]], "labels": [1, 1]}, "same length"),
        ({"object": 1, "points": [[1, 2]], "labels": [2]}, "labels must be 1"),
        ({"object": 1, "mask": "m.png", "box": [0, 0, 1, 1]}, "cannot be combined"),
        ({"object": 1, "box": [0, 0, 1]}, "box"),
        ({"object": -1, "box": [0, 0, 1, 1]}, "object"),
        ({"object": 1, "box": [0, 0, 1, 1], "colour": "red"}, "colour"),
    ],
)
def test_bad_prompt_files_fail_in_one_line(tmp_path, entry, message):
    (tmp_path / "p.json").write_text(json.dumps({"prompts": [entry]}))
    with pytest.raises(InputError, match=message) as error:
        load_prompt_file(tmp_path / "p.json")
    assert "\n" not in str(error.value)


def test_merge_accumulates_clicks_and_refuses_mask_mixes():
    merged = merge_prompts([
        Prompt(1, 0, box=(0, 0, 5, 5)),
        Prompt(1, 0, points=((1.0, 1.0),), labels=(1,)),
        Prompt(1, 0, points=((2.0, 2.0),), labels=(0,)),
        Prompt(2, 3, points=((4.0, 4.0),), labels=(1,)),
    ])  # fmt: skip
    assert len(merged) == 2
    assert merged[0].box == (0, 0, 5, 5) and merged[0].labels == (1, 0)
    with pytest.raises(InputError, match="cannot be"):
        merge_prompts([Prompt(1, 0, mask=np.ones((2, 2), bool)), Prompt(1, 0, box=(0, 0, 1, 1))])


@pytest.mark.parametrize(
    "prompt, message",
    [
        (Prompt(1, 0, points=((100.0, 5.0),), labels=(1,)), "outside the 64x48 frame"),
        (Prompt(1, 0, box=(10.0, 10.0, 5.0, 20.0)), "empty or outside"),
        (Prompt(1, 0, mask=np.ones((10, 10), bool)), "mask is 10x10"),
        (Prompt(1, 0, mask=np.zeros((48, 64), bool)), "empty"),
    ],
)
def test_validation_against_the_frame(prompt, message):
    with pytest.raises(InputError, match=message):
        validate_prompts([prompt], width=64, height=48)


def test_timing_check():
    check_prompt_timing(Prompt(1, 5, points=((1.0, 1.0),), labels=(1,)), next_frame=5)
    with pytest.raises(InputError, match="after that frame was processed"):
        check_prompt_timing(Prompt(1, 4, points=((1.0, 1.0),), labels=(1,)), next_frame=5)
    with pytest.raises(InputError, match="no points, box or mask"):
        check_prompt_timing(Prompt(1, 5), next_frame=5)


@pytest.mark.parametrize(
    "flag, path, frame",
    [
        ("1:{d}/m.png", "m.png", 0),
        ("1:{d}/m@2x.png", "m@2x.png", 0),
        ("1:{d}/m@2x.png@7", "m@2x.png", 7),
        ("1:{d}/m@5@0", "m@5", 0),  # a path ending in @digits takes an explicit frame
        ("1:{d}/m.png @ 3", "m.png", 3),
    ],
)
def test_mask_flag_takes_only_a_trailing_at_digits_as_frame(tmp_path, flag, path, frame):
    folder = tmp_path / "at@dir"
    folder.mkdir()
    mask = np.zeros((6, 8), np.uint8)
    mask[1:3, 2:5] = 1
    Image.fromarray(mask).save(folder / path, format="PNG")
    prompt = parse_flag("mask", flag.format(d=folder))
    assert prompt.frame == frame and prompt.mask.sum() == 6


@pytest.mark.parametrize(
    "kind, text, message",
    [
        ("point", "1:nan,3", "finite"),
        ("box", "1:0,0,inf,3", "finite"),
        ("point", f"{2**40}:1,1", "object ids go up to"),
    ],
)
def test_flags_refuse_non_finite_numbers_and_huge_ids(kind, text, message):
    with pytest.raises(InputError, match=message):
        parse_flag(kind, text)


def _points(frame: int, obj: int = 1) -> Prompt:
    return Prompt(obj, frame, points=((1.0, 1.0),), labels=(1,))


@pytest.mark.parametrize(
    "frames, num_frames, max_frames, message",
    [
        ([0, 23], 24, None, None),
        ([0, 24], 24, None, "object 1 is prompted on frame 24, but the video has only 24 frames"),
        ([10], 24, 5, "beyond --max-frames 5 (frames 0 to 4 are tracked)"),
        ([10], None, 5, "beyond --max-frames 5"),
        ([30], 24, 40, "the video has only 24 frames"),
        ([30], 24, 10, "beyond --max-frames 10"),
        ([4], 24, 5, None),
        ([10_000], None, None, None),  # length unknown: checked as the frames come
    ],
)
def test_prompt_frames_against_the_length(frames, num_frames, max_frames, message):
    prompts = [_points(frame) for frame in frames]
    if message is None:
        check_prompt_frames(prompts, num_frames, max_frames)
        return
    with pytest.raises(InputError) as error:
        check_prompt_frames(prompts, num_frames, max_frames)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("deep.json", "[" * 50_000 + "]" * 50_000, "nested too deeply"),
        ("deep40.json", '{"prompts": ' + "[" * 40 + "]" * 40 + "}", "more than 32 levels"),
        ("bad.json", b"\xff\xfe{}", "is not UTF-8 text (byte 0)"),
        ("nan.json", '{"prompts": [{"object": 1, "box": [NaN, 0, 1, 1]}]}', "NaN"),
        ("inf.json", '{"prompts": [{"object": 1, "box": [0, 0, -Infinity, 1]}]}', "-Infinity"),
        ("list.yaml", "- {object: 1, box: [0, 0, .inf, 1]}\n", "finite number"),
        ("true.yaml", "- {object: true, box: [0, 0, 1, 1]}\n", "whole number, not true/false"),
        ("syntax.json", '{"prompts": [', "cannot parse prompts file"),
        ("empty.yaml", "", "invalid"),
    ],
)
def test_prompt_documents_are_read_defensively(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(InputError, match=re.escape(message)) as error:
        load_prompt_file(path)
    assert "\n" not in str(error.value)


def test_yaml_alias_bomb_is_refused_without_expanding_it(tmp_path):
    lines = ["a0: &a0 [0, 0, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\nprompts: *a11\n")
    with pytest.raises(InputError, match="more than 1000000 values"):
        read_prompt_document(tmp_path / "bomb.yaml")  # 10**12 values if expanded


def test_endless_prompt_file_is_refused():
    with pytest.raises(InputError, match="larger than 16 MiB"):
        read_prompt_document(Path("/dev/zero"))


def test_utf8_bom_and_yaml_prompt_files_are_accepted(tmp_path):
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + b'[{"object": 2, "box": [0, 0, 4, 4]}]')
    (tmp_path / "p.yaml").write_text("prompts:\n  - {object: 2, frame: 3, points: [[1, 2]]}\n")
    assert [p.box for p in load_prompt_file(tmp_path / "bom.json")] == [(0.0, 0.0, 4.0, 4.0)]
    (yaml_prompt,) = load_prompt_file(tmp_path / "p.yaml")
    assert (yaml_prompt.obj_id, yaml_prompt.frame, yaml_prompt.labels) == (2, 3, (1,))


def test_prompt_specs_take_numpy_numbers_but_not_bools_or_text():
    """Specs built in code (masks' label ids are numpy ints) validate as JSON ones do."""
    from jobs.prompts import PromptSpec

    spec = PromptSpec(object=np.int64(3), frame=np.uint16(2), box=(np.float32(1), 0, 4, 4))
    assert (spec.object, spec.frame, spec.box) == (3, 2, (1.0, 0.0, 4.0, 4.0))
    assert type(spec.object) is int
    for bad in ({"object": True}, {"object": "1"}, {"object": 1.0}, {"frame": 2.5}):
        with pytest.raises(ValueError, match="whole number"):
            PromptSpec(**({"object": 1, "box": (0, 0, 4, 4)} | bad))
