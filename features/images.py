"""Decoding one image file into the RGB picture every backbone expects.

Every file-based source loads through ``load_image``, so all of them treat EXIF
orientation, odd pixel modes and hostile files the same way. Problems become an
``ImageError`` naming the file, which extraction turns into a skip or a stop
(``data.on_error``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = ["ImageError", "load_image", "to_rgb", "readable_name"]

_WHITE = (255, 255, 255, 255)


class ImageError(OSError):
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


def load_image(path: str | Path) -> Image.Image:
    """The image at ``path`` decoded, EXIF-orientated and converted to RGB.

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
                return to_rgb(ImageOps.exif_transpose(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(
            f"image {readable_name(path)} is too large to be real ({error}); raise "
            f"PIL.Image.MAX_IMAGE_PIXELS if you trust it"
        ) from error
    except Exception as error:  # PIL raises OSError, ValueError, SyntaxError, struct.error... on bad files
        raise ImageError(f"cannot read image {readable_name(path)}: {error}") from error
