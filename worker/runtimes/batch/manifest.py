"""``annotate-manifest.json``: written last, it marks a video's output folder complete.

It lists every output file with its size and sha256, and the request that produced them
(exports, frame limit, model). A folder is complete when its manifest parses, every listed file
is present with the recorded size and checksum, and the request covers the one asked for now.
The manifest is written atomically (temporary file + rename), so an interrupted run never
leaves one that looks complete; a rerun deletes it before touching the folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from jobs.atomic_files import atomic_writer

MANIFEST_FILE = "annotate-manifest.json"  # beside a queue job's own manifest.json
FORMAT = "streamseg-annotate-manifest"
VERSION = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class OutputRequest:
    """What a video's outputs were made for: export names, frame limit, engine name.

    A wanted request's ``model`` of None accepts any model (``--queue`` with ``--model auto``:
    the workers choose).
    """

    exports: tuple[str, ...]
    max_frames: int | None
    model: str | None

    def covers(self, wanted: OutputRequest) -> bool:
        return (
            set(wanted.exports) <= set(self.exports)
            and self.max_frames == wanted.max_frames
            and wanted.model in (None, self.model)
        )


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the video's output folder, '/'-separated
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    video: str
    source: str
    num_frames: int
    object_ids: tuple[int, ...]
    request: OutputRequest
    files: tuple[FileEntry, ...]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entries(folder: Path, paths: Iterable[Path]) -> tuple[FileEntry, ...]:
    """Entries for ``paths`` (inside ``folder``), sorted by path."""
    entries = []
    for path in sorted({Path(p) for p in paths}):
        relative = path.relative_to(folder).as_posix()
        entries.append(FileEntry(relative, path.stat().st_size, sha256_file(path)))
    return tuple(entries)


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write ``folder/annotate-manifest.json`` atomically (umask file mode); returns its path."""
    document = {"format": FORMAT, "version": VERSION, **asdict(manifest)}
    target = Path(folder) / MANIFEST_FILE
    with atomic_writer(target, "w") as out:
        json.dump(document, out, indent=1)
    return target


def read_manifest(folder: Path) -> Manifest | None:
    """The folder's manifest, or None when absent or unreadable."""
    try:
        raw = json.loads((Path(folder) / MANIFEST_FILE).read_text())
        if raw.get("format") != FORMAT or raw.get("version") != VERSION:
            return None
        return _manifest_from_json(raw)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _manifest_from_json(raw: dict) -> Manifest:
    request = raw["request"]
    return Manifest(
        video=str(raw["video"]),
        source=str(raw["source"]),
        num_frames=int(raw["num_frames"]),
        object_ids=tuple(int(i) for i in raw["object_ids"]),
        request=OutputRequest(
            tuple(str(e) for e in request["exports"]),
            None if request["max_frames"] is None else int(request["max_frames"]),
            str(request["model"]),
        ),
        files=tuple(
            FileEntry(str(f["path"]), int(f["bytes"]), str(f["sha256"])) for f in raw["files"]
        ),
    )


def complete_manifest(folder: Path, wanted: OutputRequest) -> Manifest | None:
    """The manifest if the folder holds a complete output for ``wanted``, else None."""
    manifest = read_manifest(folder)
    if manifest is None or not manifest.request.covers(wanted):
        return None
    for entry in manifest.files:
        path = Path(folder) / entry.path
        if not path.is_file() or path.stat().st_size != entry.bytes:
            return None
        if sha256_file(path) != entry.sha256:
            return None
    return manifest


def remove_manifest(folder: Path) -> None:
    (Path(folder) / MANIFEST_FILE).unlink(missing_ok=True)
