"""Pictures embedded in a page: images as small base64 JPEG thumbnails, files as data URIs.

A data URI keeps the page one self-contained file that opens from disk with no network.
JPEG at quality 70 and about 96 px keeps a thumbnail near 3 kB, so a few hundred of them
cost a page well under a megabyte.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image

__all__ = ["THUMBNAIL_SIZE", "thumbnail_uri", "file_uri"]

THUMBNAIL_SIZE = 96
"""Longest side of a thumbnail, in pixels."""


def thumbnail_uri(image: Image.Image, size: int = THUMBNAIL_SIZE, quality: int = 70) -> str:
    """``image`` fitted into ``size`` x ``size`` (small images are enlarged, so that a 28 px
    picture is still seen) as a ``data:image/jpeg;base64,...`` URI."""
    picture = image.convert("RGB")
    scale = size / max(picture.size)
    picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                             Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def file_uri(path: str | Path, media_type: str = "image/png") -> str:
    """The file at ``path`` as a data URI (the report's plots)."""
    return f"data:{media_type};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
