"""What counts as a URL in a job spec (``scheme://...``); anything else is a local path.

Kept apart from ``jobs.storage`` so that light paths (``streamseg submit``, spec validation)
can tell without importing fsspec.
"""

from __future__ import annotations

import re

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(text: str) -> bool:
    """``scheme://...`` (anything else is a local path). The one URL check: job specs, storage,
    video sources and live sources all ask it."""
    return _URL.match(text) is not None


def url_scheme(text: str) -> str | None:
    """The scheme of a URL, lower-case (``"https"``, ``"s3"``); None for a local path."""
    return text.split("://", 1)[0].lower() if is_url(text) else None
