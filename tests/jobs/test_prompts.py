"""Prompt parsing and validation: flags, prompt files, merging, frame checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from jobs.errors import InputError
from jobs.prompts import (
    Prompt,
    check_prompt_timing,
    load_prompt_file,
    merge_prompts,
    parse_flag,
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
