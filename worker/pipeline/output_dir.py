"""A run's output folder: checked before tracking starts, cleared of earlier runs' debris,
and write failures during the run turned into one ``OutputError`` line.

The debris is only what streamseg's own writers leave when a run is killed (SIGKILL, power
loss): ``jobs.overlay.OverlayWriter`` encodes into ``.overlay.mp4.<pid>.partial``,
``jobs.tracks.TracksWriter`` spools into ``tracks.json.spool``, assembles in a ``.tracks-*``
scratch folder and renames ``.tracks.json.*.tmp`` into place (``jobs.atomic_files``). A partial
file whose pid is a running process other than this one belongs to a live run and is kept.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from configs.errors import OutputError
from jobs.output_names import SPOOL_SUFFIX, TRACKS_SCRATCH_PREFIX

MIN_FREE_BYTES = 4 << 20  # below this not even a short tracks.json and overlay fit
_PROBE_BYTES = 4096


def prepare_output_dir(out_dir: Path, names: Sequence[str], *, keep_spool: bool = False) -> None:
    """Make ``out_dir`` ready for the results ``names``; an ``OutputError`` if it cannot be.

    Checks, in order: the folder exists or can be made; no result name is taken by a folder
    or other non-file; a file can be created and written there; at least ``MIN_FREE_BYTES``
    are free where the file system says. Then removes earlier runs' debris (the tracks spool
    too unless ``keep_spool``: a resumed run continues from it) and the old results, so that
    an old result never passes for this run's.
    """
    out_dir = Path(out_dir)
    _make_folder(out_dir)
    for name in names:
        _check_target(out_dir / name)
    check_output_folder(out_dir)
    remove_debris(out_dir, names, keep_spool=keep_spool)
    for name in names:
        with write_errors(out_dir):
            (out_dir / name).unlink(missing_ok=True)


@contextmanager
def removed_if_failed(out_dir: Path) -> Iterator[None]:
    """A run's output folder that did not exist before is removed again (if still empty)
    when the block fails, so that a bad input leaves no trace at all."""
    out_dir = Path(out_dir)
    existed = out_dir.exists() or out_dir.is_symlink()
    try:
        yield
    except BaseException:
        if not existed:
            try:
                out_dir.rmdir()
            except OSError:
                pass  # not empty or not ours to remove: it stays
        raise


def check_output_folder(out_dir: Path) -> None:
    """``out_dir`` is (or is made) a folder that takes a new file, with free space left."""
    _make_folder(Path(out_dir))
    _check_writable(Path(out_dir))
    _check_free_space(Path(out_dir))


def remove_debris(out_dir: Path, names: Sequence[str], *, keep_spool: bool = False) -> list[Path]:
    """Remove the writers' temporary files for ``names`` left by killed runs; returns them."""
    removed = []
    for entry in _debris(Path(out_dir), names, keep_spool):
        with write_errors(out_dir):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _debris(out_dir: Path, names: Sequence[str], keep_spool: bool) -> Iterator[Path]:
    partial = [re.compile(rf"\.{re.escape(name)}\.(\d+)\.partial") for name in names]
    temporary = [re.compile(rf"\.{re.escape(name)}\..+\.tmp") for name in names]
    spools = set() if keep_spool else {name + SPOOL_SUFFIX for name in names}
    try:
        entries = list(out_dir.iterdir())
    except OSError as error:
        raise OutputError(f"cannot list output folder {out_dir}: {describe(error)}") from None
    for entry in entries:
        name = entry.name
        pid = next((int(m[1]) for p in partial if (m := p.fullmatch(name))), None)
        if pid is not None:
            if not _running_elsewhere(pid):
                yield entry
        elif name in spools or any(p.fullmatch(name) for p in temporary):
            yield entry
        elif name.startswith(TRACKS_SCRATCH_PREFIX) and entry.is_dir():
            yield entry


def _running_elsewhere(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or an odd number): leave its file alone
    return True


@contextmanager
def write_errors(out_dir: Path) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing results (ENOSPC, EIO, EACCES, a removed
    folder, ...) into one ``OutputError`` line naming ``out_dir``."""
    try:
        yield
    except OSError as error:
        raise OutputError(f"cannot write the results to {out_dir}: {describe(error)}") from None


def describe(error: OSError) -> str:
    """The system's one-line reason for ``error`` (``No space left on device``)."""
    if error.errno is not None:
        return os.strerror(error.errno)
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _make_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"output folder {out_dir} exists and is not a folder") from None
    except NotADirectoryError:
        raise OutputError(
            f"cannot make output folder {out_dir}: part of its path is a file"
        ) from None
    except FileNotFoundError:  # parents exist, yet no folder can be made (/proc, /sys)
        raise OutputError(
            f"cannot make output folder {out_dir}: its file system does not allow new folders"
        ) from None
    except OSError as error:
        raise OutputError(f"cannot make output folder {out_dir}: {describe(error)}") from None
    if not out_dir.is_dir():
        raise OutputError(f"output folder {out_dir} is not a folder")


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise OutputError(f"{path} is a folder; remove it or choose another output folder")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path} exists and is not a regular file")


def _check_writable(out_dir: Path) -> None:
    """Create and write a probe file: the only check that sees ACLs, read-only mounts, full
    disks and pseudo file systems alike (``os.access`` sees none of these for root)."""
    try:
        descriptor, probe = tempfile.mkstemp(dir=out_dir, prefix=".streamseg-probe-")
    except OSError as error:
        raise OutputError(f"output folder {out_dir} is not writable: {describe(error)}") from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(b"\0" * _PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise OutputError(f"cannot write to output folder {out_dir}: {describe(error)}") from None
    finally:
        Path(probe).unlink(missing_ok=True)


def _check_free_space(out_dir: Path) -> None:
    try:
        usage = shutil.disk_usage(out_dir)
    except OSError:
        return  # not knowable here; write errors during the run still end cleanly
    if usage.total > 0 and usage.free < MIN_FREE_BYTES:
        raise OutputError(
            f"output folder {out_dir} has only {usage.free // 1024} KiB free "
            f"(at least {MIN_FREE_BYTES >> 20} MiB needed)"
        )
