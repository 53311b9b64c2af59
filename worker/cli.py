"""The ``streamseg`` command: one sub-command per module in ``worker.commands``.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``handler=callable(args) -> int``. Command modules import only light modules at their top
(heavy ones, torch, sam2, PyAV, OpenCV, numpy, inside handlers), so that ``--help`` is instant.

Every error reaches the user as one line and exit status 2: a ``StreamsegError`` from a
handler, and a usage error from argparse. SIGTERM and SIGHUP stop a command as Ctrl-C does
(the writers' context managers remove what they had started), with status 128 + signal; a
signal the command was started ignoring stays ignored (``nohup``: see
``worker.runtimes.stopping``).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from contextlib import nullcontext, suppress

from configs.errors import StreamsegError
from worker.process_tuning import tune_process
from worker.runtimes.std_streams import (
    OutputFailed,
    QuietOnFailure,
    RaisingOnFailure,
    discard_fd,
    reserve_standard_fds,
)
from worker.runtimes.stopping import Stopped, StopRecord, stop_signals_as_interrupt

COMMAND_MODULES = (
    "worker.commands.segment",
    "worker.commands.eval",
    "worker.commands.live",
    "worker.commands.queue",
    "worker.commands.worker",
    "worker.commands.annotate",
    "worker.commands.demo",
)
# commands that handle stop signals themselves (an RQ worker finishes or requeues its job)
OWN_SIGNAL_HANDLING = ("worker",)


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``streamseg segment: error: ... (see --help)``), exit 2;
    help shown as plain text (descriptions are docstrings, whose reST double-backtick
    literals lose their backticks)."""

    def format_help(self) -> str:
        return super().format_help().replace("``", "")

    def error(self, message: str) -> None:  # type: ignore[override]
        first = message.strip().splitlines()[0] if message.strip() else "invalid usage"
        self.exit(2, f"{self.prog}: error: {first} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="streamseg",
        description="Video segmentation and tracking with SAM 2 and a streaming memory bank.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue  # command not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command of ``argv``; its exit status.

    The standard streams may be closed, full or gone (``worker.runtimes.std_streams``):
    progress and messages on stderr are then dropped and the work goes on. stdout carries
    results (a summary, a job id), so it is flushed before returning: a reader that went away
    (``streamseg ... | head``) ends the command quietly with 128 + SIGPIPE, as for a tool the
    signal stopped, and any other failure to write it is one line and status 2.
    """
    reserve_standard_fds()
    real = sys.stdout, sys.stderr
    sys.stderr = QuietOnFailure(sys.stderr)
    if sys.stdout is not None:
        sys.stdout = RaisingOnFailure(sys.stdout)
    try:
        try:
            code = _run_command(argv)
        except SystemExit as exit_:  # argparse: --help, --version, usage errors
            _flush(sys.stdout)
            raise exit_ from None
        _flush(sys.stdout)
        return code
    except OutputFailed as failed:
        return _output_failed(failed.error, real[0])
    finally:
        sys.stdout, sys.stderr = real


def _flush(stream) -> None:
    if stream is not None:
        stream.flush()


def _output_failed(error: OSError, stdout) -> int:
    """stdout could not be written: 128 + SIGPIPE, quietly, when its reader went away;
    otherwise one line and status 2. Its descriptor then points at /dev/null, so that the
    interpreter's flush at exit does not fail again."""
    with suppress(OSError, ValueError):
        discard_fd(stdout.fileno())
    if isinstance(error, BrokenPipeError):
        return 128 + signal.SIGPIPE
    print(f"streamseg: error: cannot write the output: {error.strerror}", file=sys.stderr)
    return 2


def _run_command(argv: list[str] | None) -> int:
    tune_process()  # OpenMP's wait policy and the allocator's, before torch loads
    parser = build_parser()
    args = parser.parse_args(argv)
    own = args.command in OWN_SIGNAL_HANDLING
    record = StopRecord()
    try:
        with nullcontext(record) if own else stop_signals_as_interrupt() as record:
            return int(args.handler(args) or 0)
    except StreamsegError as error:
        print(f"streamseg: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        signum = interrupt.signum if isinstance(interrupt, Stopped) else record.signum
        if signum is None:
            print("streamseg: interrupted; no output was marked complete", file=sys.stderr)
            return 130
        name = signal.Signals(signum).name
        print(f"streamseg: stopped by {name}; no output was marked complete", file=sys.stderr)
        return 128 + signum


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
