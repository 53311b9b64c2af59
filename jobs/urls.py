"""What counts as a URL in a job spec (``scheme://...``); anything else is a local path.

Kept apart from ``jobs.storage`` so that light paths (``streamseg submit``, spec validation)
can tell without importing fsspec.
"""

from __future__ import annotations

import re

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(text: str) -> bool:
    """``scheme://...`` (anything else is a local path)."""
    return _URL.match(text) is not None
