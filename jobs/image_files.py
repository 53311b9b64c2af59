"""Opening image files (masks, frames) with Pillow's decompression-bomb warning as an error.

Pillow refuses an image over 2 x ``Image.MAX_IMAGE_PIXELS`` (179 MP) with
``DecompressionBombError``, but between 89 and 179 MP it only warns, and the warning lands on
stderr as two extra lines beside the command's one-line error or result. Everything here
that could be that large is refused anyway (a mask must match a video of at most
``configs.models.MAX_SOURCE_PIXELS``, 35 MP; so must a folder's frames), so
:func:`open_image` turns the warning into the error, raised from the open itself, before any
pixel is decoded.

The warning filter is process-wide while ``Image.open`` runs (``warnings.catch_warnings``),
so this is for the main thread's header reads: masks, and the sizes of a folder's frames.
The frames themselves, read in the decode thread, are below the limit by then.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from PIL import Image


@contextmanager
def open_image(source: str | os.PathLike[str] | BinaryIO) -> Iterator[Image.Image]:
    """``Image.open(source)`` as a context manager; an image over Pillow's warning limit
    raises ``Image.DecompressionBombError`` (see the module)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(source)
        except Image.DecompressionBombWarning as warning:
            raise Image.DecompressionBombError(str(warning)) from None
    with image:
        yield image
