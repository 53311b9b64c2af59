"""``streamseg --help``: no heavy module loaded, every flag explained, plain text.

The import check runs each ``--help`` in a fresh interpreter and reads ``sys.modules``: what
is imported is deterministic, where a timing would not be.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from worker.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
# packages that take from 0.2 s (PyYAML) to 10 s (torch) to import on this machine's cores
HEAVY = (
    "torch", "sam2", "cv2", "av", "rq", "redis", "numpy", "PIL", "pydantic", "yaml", "tqdm",
    "hydra", "fsspec", "pycocotools", "aiohttp", "scipy",
)  # fmt: skip


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


COMMANDS = sorted(_subparsers(build_parser()))

_PROBE = """
import json, sys
from worker.cli import main
try:
    main(sys.argv[1:] + ["--help"])
except SystemExit:
    pass
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(HEAVY)))
print("HEAVY=" + json.dumps(heavy))
"""


def test_every_command_is_registered():
    assert {"segment", "eval", "annotate", "demo", "live", "worker", "submit"} <= set(COMMANDS)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_imports_no_heavy_module(command):
    code = _PROBE.replace("json.loads(HEAVY)", f"json.loads({json.dumps(json.dumps(HEAVY))})")
    args = [] if command is None else [command]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "usage: streamseg" in result.stdout
    heavy = json.loads(result.stdout.rsplit("HEAVY=", 1)[1])
    assert heavy == [], f"streamseg {command or ''} --help imported {heavy}"


def _options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        yield action


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_text(command):
    parser = _subparsers(build_parser())[command]
    options = list(_options(parser))
    assert options, command
    missing = [
        "/".join(action.option_strings) or action.dest
        for action in options
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert missing == [], f"streamseg {command}: no help for {missing}"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_plain_text(command):
    parser = build_parser() if command is None else _subparsers(build_parser())[command]
    text = parser.format_help()
    assert "``" not in text
    assert "%(default)" not in text and "(default: None)" not in text


@pytest.mark.parametrize(
    "command, fragments",
    [
        ("segment", ["--max-frames N", "(default: all)", "(default: auto = sam2", "@FRAME"]),
        ("annotate", ["(default: tracks,davis)", "(default: 32)", "(default: 0.8)"]),
        ("eval", ["(default: 0.008, as the DAVIS benchmark)"]),
        ("demo", ["(default: demo-out)"]),
    ],
)
def test_help_shows_the_effective_defaults(command, fragments):
    text = " ".join(_subparsers(build_parser())[command].format_help().split())
    for fragment in fragments:
        assert fragment in text, fragment


def test_help_defaults_match_the_code():
    """The help texts quote constants of modules --help must not import."""
    from jobs.metrics import DEFAULT_BOUND_TH
    from worker.commands.annotate import HELP_DEFAULT_EXPORTS, HELP_EXPORT_KINDS
    from worker.commands.eval import HELP_DEFAULT_BOUND_TH
    from worker.runtimes.batch.exports import DEFAULT_EXPORTS, ExportKind

    assert HELP_DEFAULT_BOUND_TH == DEFAULT_BOUND_TH
    assert HELP_EXPORT_KINDS == tuple(kind.value for kind in ExportKind)
    assert HELP_DEFAULT_EXPORTS == tuple(kind.value for kind in DEFAULT_EXPORTS)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (
            ["segment", "v.mp4", "--out", "o", "--max-frames", "0"],
            "--max-frames: must be at least 1",
        ),
        (["segment", "v.mp4"], "the following arguments are required: --out"),
        (["annotate", "x", "--out", "o", "--prompts", "p", "--auto", "-1"], "--auto: must be"),
        (["bogus"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line(argv, fragment, capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
