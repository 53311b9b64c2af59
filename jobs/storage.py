"""Where jobs read their inputs and write their results: local paths, http(s), any fsspec URL.

Inputs: a local path is used as it is; an http(s) URL is checked for reachability and then
stream-decoded by PyAV; any other fsspec URL (``s3://``, ``gs://``, ``memory://``...) is copied
to the worker's scratch folder first. Outputs go to a local folder or an fsspec URL.

A result becomes visible atomically: every file is written first (each under its final name in
one put, or via a temporary name and a rename on local disks), then ``manifest.json`` listing
each file's size and sha256, last. A folder without a manifest, or whose manifest names another
job, is not a result. Storage operations are retried with exponential backoff; what still fails
raises ``TransientError`` (the job is retried) unless it is plainly the caller's fault (missing
input, no permission, a read-only filesystem, unknown URL scheme), which raises ``InputError``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel, ConfigDict, ValidationError

from configs.errors import InputError, TransientError
from jobs.urls import is_url as is_url  # re-exported: callers say jobs.storage.is_url
from jobs.urls import url_scheme

MANIFEST_NAME = "manifest.json"
_HTTP_TIMEOUT_S = 20.0
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
_PERMANENT_ERRNOS = frozenset({errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP})
T = TypeVar("T")


# --- retries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retrier:
    """Runs one storage operation up to ``attempts`` times, sleeping ``backoff_s * 2**n``."""

    attempts: int = 4
    backoff_s: float = 0.5

    def call(self, what: str, operation: Callable[[], T]) -> T:
        for attempt in range(self.attempts):
            try:
                return operation()
            except _PERMANENT as error:
                raise InputError(f"{what}: {_reason(error)}") from None
            except (OSError, TimeoutError) as error:
                if getattr(error, "errno", None) in _PERMANENT_ERRNOS:
                    raise InputError(f"{what}: {_reason(error)}") from None
                if attempt + 1 == self.attempts:
                    raise TransientError(f"{what}: {_reason(error)}") from error
                time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(f"{type(error).__name__}: {text}".split())


# --- locations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """A folder on some filesystem: ``fs`` and the ``root`` path inside it (``url`` as given)."""

    fs: fsspec.AbstractFileSystem
    root: str
    url: str

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, *names: str) -> str:
        return posixpath.join(self.root, *names)

    def sub(self, name: str) -> Location:
        return Location(self.fs, self.path(name), self.url.rstrip("/") + "/" + name)

    def display(self, name: str) -> str:
        """What to show a user for the file ``name`` in this folder."""
        return os.path.join(self.url, name) if self.is_local else self.url.rstrip("/") + "/" + name


def open_location(url: str) -> Location:
    """The folder at a local path or fsspec URL (it need not exist yet)."""
    if not is_url(url):
        path = os.path.abspath(os.path.expanduser(url))
        return Location(LocalFileSystem(), path, path)
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:
        raise InputError(f"unsupported storage URL {url}: {_reason(error)}") from None
    return Location(fs, root.rstrip("/") or root, url)


def write_bytes(location: Location, name: str, data: bytes) -> None:
    """Write ``name`` in one step: readers see the old content or the new, never a part."""
    target = location.path(name)
    if location.is_local:
        os.makedirs(location.root, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=location.root, prefix=f".{name}.", delete=False) as f:
            f.write(data)
        os.chmod(f.name, 0o666 & ~_umask())  # as a plainly created file, not 0600
        os.replace(f.name, target)
    else:
        location.fs.pipe_file(target, data)


def put_file(location: Location, local: Path, name: str) -> None:
    """Copy the local file ``local`` to ``name`` in ``location``, in one visible step."""
    target = location.path(name)
    if location.is_local:
        os.makedirs(location.root, exist_ok=True)
        partial = location.path(f".{name}.{os.getpid()}.partial")
        location.fs.put_file(str(local), partial)
        os.replace(partial, target)
    else:
        location.fs.put_file(str(local), target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_bytes(location: Location, name: str) -> bytes | None:
    """The content of ``name``, or None when it does not exist."""
    try:
        return location.fs.cat_file(location.path(name))
    except FileNotFoundError:
        return None


def remove(location: Location, name: str) -> None:
    """Delete the file ``name`` if it exists."""
    try:
        location.fs.rm_file(location.path(name))
    except FileNotFoundError:
        pass


def remove_tree(location: Location) -> None:
    """Delete the folder and everything in it, if it exists."""
    if location.fs.exists(location.root):
        location.fs.rm(location.root, recursive=True)


# --- inputs --------------------------------------------------------------------------------


def fetch_input(source: str, scratch: Path, retrier: Retrier) -> str:
    """Something ``open_video`` can read for ``source``: the path or URL itself, or a copy."""
    if not is_url(source):
        return source
    if url_scheme(source) in ("http", "https"):
        retrier.call(f"cannot reach {source}", lambda: _probe_http(source))
        return source
    location = open_location(source)
    name = posixpath.basename(location.root.rstrip("/")) or "input"
    local = scratch / name
    scratch.mkdir(parents=True, exist_ok=True)

    def download() -> None:
        if location.fs.isdir(location.root):
            location.fs.get(location.root + "/", str(local) + "/", recursive=True)
        else:
            location.fs.get_file(location.root, str(local))

    retrier.call(f"cannot read {source}", download)
    return str(local)


def _probe_http(url: str) -> None:
    """Raise FileNotFoundError for 4xx (the URL is wrong), OSError for anything transient."""
    request = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S):
            return
    except urllib.error.HTTPError as error:
        if 400 <= error.code < 500 and error.code not in (408, 429):
            raise FileNotFoundError(f"HTTP {error.code} {error.reason}") from None
        raise OSError(f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise OSError(str(error.reason)) from None


# --- results -------------------------------------------------------------------------------


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    size: int
    sha256: str


class Manifest(BaseModel):
    """``manifest.json``: the last file of a result, naming every other one and its checksum."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    spec_digest: str
    created_at: str
    num_frames: int
    object_ids: list[int]
    files: list[ManifestFile]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish(
    location: Location,
    files: list[Path],
    *,
    job_id: str,
    spec_digest: str,
    num_frames: int,
    object_ids: list[int],
    retrier: Retrier,
) -> Manifest:
    """Upload ``files``, then the manifest with their checksums (last)."""
    entries = []
    for path in files:
        size, digest = path.stat().st_size, sha256_file(path)
        entries.append(ManifestFile(name=path.name, size=size, sha256=digest))
        where = f"cannot write {location.display(path.name)}"
        retrier.call(where, lambda p=path: put_file(location, p, p.name))
    manifest = Manifest(
        job_id=job_id,
        spec_digest=spec_digest,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        num_frames=num_frames,
        object_ids=object_ids,
        files=entries,
    )
    data = manifest.model_dump_json(indent=1).encode()
    retrier.call(
        f"cannot write {location.display(MANIFEST_NAME)}",
        lambda: write_bytes(location, MANIFEST_NAME, data),
    )
    return manifest


def read_manifest(location: Location) -> Manifest | None:
    """The manifest in ``location``, or None when there is none (or it is unreadable)."""
    data = read_bytes(location, MANIFEST_NAME)
    if data is None:
        return None
    try:
        return Manifest.model_validate_json(data)
    except ValidationError:
        return None


def verify(location: Location, manifest: Manifest) -> None:
    """Check every file's size and sha256; an ``InputError`` naming the first mismatch."""
    for entry in manifest.files:
        digest = hashlib.sha256()
        try:
            with location.fs.open(location.path(entry.name), "rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 20), b""):
                    digest.update(block)
        except FileNotFoundError:
            raise InputError(f"result file missing: {location.display(entry.name)}") from None
        if digest.hexdigest() != entry.sha256:
            raise InputError(f"checksum mismatch: {location.display(entry.name)}")
