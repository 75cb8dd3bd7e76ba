"""Decoding one image file into the RGB picture every backbone expects.

Every file-based source loads through ``load_image``, so all of them treat EXIF
orientation, odd pixel modes and hostile files the same way. Problems become an
``ImageError`` naming the file, which extraction turns into a skip or a stop
(``data.on_error``).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import FileInputError

__all__ = ["ImageError", "load_image", "to_rgb", "readable_name", "upright"]

_WHITE = (255, 255, 255, 255)
ORIENTATION = 0x0112
"""The EXIF tag that says how a camera held the picture (1: as stored)."""


class ImageError(FileInputError):
    """An image file cannot be used; the message names the file and why."""


def readable_name(path: str | Path) -> str:
    """``path`` as valid UTF-8 text: bytes that are not UTF-8 become ``\\xNN`` escapes.

    On Linux a file name is bytes; Python keeps undecodable bytes as surrogates, which
    h5py (rightly) refuses to store as UTF-8. The escaped form is readable and stable.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy of ``image``, whatever its mode.

    16- and 32-bit integer images are scaled to 8 bits (PIL's own conversion clips them to
    white); transparent pixels are shown over white rather than over whatever colour the
    file happens to store under them.
    """
    if image.mode.startswith("I"):
        pixels = np.clip(np.asarray(image, dtype=np.float64) / 257, 0, 255).round().astype(np.uint8)
        return Image.fromarray(pixels, "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        background = Image.new("RGBA", image.size, _WHITE)
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def upright(data: bytes) -> bool:
    """Whether an image file's bytes show the picture as stored: no EXIF orientation tag
    turns or mirrors it. Reads the header only; a file PIL cannot open counts as not upright."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.getexif().get(ORIENTATION, 1) == 1
    except Exception:  # noqa: BLE001 - whatever is wrong with it, the full decoder will say
        return False


def _draft(image: Image.Image, min_side: int) -> None:
    """Let a JPEG decode at the smallest DCT scale (1/2, 1/4 or 1/8) whose short side is still >= ``min_side``.

    Decoding a 12-megapixel photo at 1/8 scale costs a fraction of full-size decoding, and
    the resize that follows starts from at least ``min_side`` pixels, so the picture the
    network sees differs only by the codec's scaling (``features.fast_decode``). PIL's
    ``draft`` keeps every side at least the size asked for; JPEG and MPO (the multi-picture
    JPEG of many phones) implement it, other formats ignore it.
    """
    factor = min(image.size) / min_side
    if factor >= 2:
        image.draft(None, (math.ceil(image.width / factor), math.ceil(image.height / factor)))


def load_image(path: str | Path, min_side: int | None = None) -> Image.Image:
    """The image at ``path`` decoded, EXIF-orientated and converted to RGB.

    With ``min_side``, a large JPEG may be decoded at reduced scale, never to a short side
    below ``min_side`` (the size the transform resizes to next).

    Raises
    ------
    ImageError
        For a missing, empty, truncated or corrupt file, a file that is not an image, and
        an image larger than ``PIL.Image.MAX_IMAGE_PIXELS`` (PIL's decompression-bomb guard).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if min_side:
                    _draft(image, min_side)
                return to_rgb(ImageOps.exif_transpose(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(
            f"image {readable_name(path)} is too large to be real ({error}); raise "
            f"PIL.Image.MAX_IMAGE_PIXELS if you trust it"
        ) from error
    except Exception as error:  # PIL raises OSError, ValueError, SyntaxError, struct.error... on bad files
        raise ImageError(f"cannot read image {readable_name(path)}: {error}") from error
