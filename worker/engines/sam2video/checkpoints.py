"""Finding a model's checkpoint: a given path, the cache, or a download into the cache.

Downloads go to ``<cache>/<file>.part`` with a progress bar and are renamed into place only
when complete, so an interrupted download never looks like a checkpoint. ``STREAMSEG_MODEL_MIRROR``
(a base URL) replaces the official host, for machines that reach a local mirror only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from configs.errors import ModelLoadError
from configs.models import ModelSpec

if TYPE_CHECKING:
    from tqdm import tqdm

DOWNLOAD_TIMEOUT_S = 30.0
_TORCH_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_PROTOCOL = b"\x80"  # the legacy format: a pickle stream, protocol >= 2


def checkpoint_url(spec: ModelSpec) -> str:
    mirror = os.environ.get("STREAMSEG_MODEL_MIRROR")
    if mirror:
        return f"{mirror.rstrip('/')}/{spec.checkpoint_filename}"
    return spec.checkpoint_url


def cached_checkpoint(spec: ModelSpec, cache_dir: Path) -> Path | None:
    path = Path(cache_dir) / spec.checkpoint_filename
    return path if path.is_file() else None


def resolve_checkpoint(
    spec: ModelSpec, checkpoint: Path | None, cache_dir: Path, show_progress: bool = True
) -> Path:
    """``checkpoint`` if given, else the cached file, else download the official one."""
    if checkpoint is not None:
        check_checkpoint_file(Path(checkpoint))
        return Path(checkpoint)
    cached = cached_checkpoint(spec, cache_dir)
    if cached is not None:
        return cached
    return download_checkpoint(spec, cache_dir, show_progress)


def check_checkpoint_file(path: Path) -> None:
    """``path`` is a readable file that can be a checkpoint; ``ModelLoadError`` saying why not.

    SAM 2 checkpoints are ``torch.save`` zip archives; a legacy pickle (first byte 0x80) is
    accepted too. Anything else (a text file, an image) is refused here, before torch's
    unpickler reports it as an opaque byte value.
    """
    if path.is_dir():
        raise ModelLoadError(f"checkpoint {path} is a folder, not a checkpoint file")
    if not path.exists():
        raise ModelLoadError(f"no such checkpoint: {path}")
    if not path.is_file():
        raise ModelLoadError(f"checkpoint {path} is not a regular file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise ModelLoadError(f"cannot read checkpoint {path}: {reason}") from None
    if not head:
        raise ModelLoadError(f"checkpoint {path} is empty")
    if not head.startswith(_TORCH_ZIP_MAGIC) and head[:1] != _PICKLE_PROTOCOL:
        raise ModelLoadError(
            f"{path} is not a PyTorch checkpoint (SAM 2 checkpoints are torch.save files, "
            "e.g. sam2.1_hiera_tiny.pt)"
        )


def download_checkpoint(spec: ModelSpec, cache_dir: Path, show_progress: bool = True) -> Path:
    """Download ``spec``'s checkpoint into ``cache_dir``; a one-line error when offline."""
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    url = checkpoint_url(spec)
    target = Path(cache_dir) / spec.checkpoint_filename
    partial = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                open(partial, "wb") as out,
                tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=f"downloading {spec.name}",
                    disable=not show_progress,
                ) as bar,
            ):
                _copy(response, out, bar)
            if total is not None and partial.stat().st_size != total:
                raise ModelLoadError(f"download of {url} was cut short; run the command again")
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise ModelLoadError(
            f"cannot download {spec.name} from {url} ({reason}); offline? download it "
            f"elsewhere and pass --checkpoint PATH, or copy it to {target}"
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return target


def _copy(response, out, bar: tqdm) -> None:
    while True:
        chunk = response.read(1 << 20)
        if not chunk:
            return
        out.write(chunk)
        bar.update(len(chunk))
