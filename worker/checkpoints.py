"""Finding a model's checkpoint: a given path, the cache, or a download into the cache.

Downloads go to ``<cache>/<file>.part`` with a progress bar and are renamed into place only
when complete, so an interrupted download never looks like a checkpoint. ``STREAMSEG_MODEL_MIRROR``
(a base URL) replaces the official host, for machines that reach a local mirror only.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from configs.models import ModelSpec
from jobs.errors import ModelLoadError

DOWNLOAD_TIMEOUT_S = 30.0


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
        if not Path(checkpoint).is_file():
            raise ModelLoadError(f"no such checkpoint: {checkpoint}")
        return Path(checkpoint)
    cached = cached_checkpoint(spec, cache_dir)
    if cached is not None:
        return cached
    return download_checkpoint(spec, cache_dir, show_progress)


def download_checkpoint(spec: ModelSpec, cache_dir: Path, show_progress: bool = True) -> Path:
    """Download ``spec``'s checkpoint into ``cache_dir``; a one-line error when offline."""
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
