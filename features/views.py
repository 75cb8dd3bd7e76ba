"""Augmented views: extra training rows, each a seeded random crop (and maybe mirror) of an image.

``features.views = N`` adds N views of every training image to the store, beside the plain
one; ``features.view_area`` is the smallest share of the picture a crop keeps (1: the whole
picture, mirrored half the time, for small centred objects that a crop loses). A view is
an image of its own to the rest of extraction: the crop and flip happen when the picture
is loaded, then the weights' usual transform resizes and centres it like every other
image, and its codes (or map) become a row. Each view row keeps its image's id as its
group, so that cross-validation and early stopping never see one image on both sides of a
split. Validation and test images keep their plain view only: they are what is measured.

The crop of view ``k`` of an image depends only on (seed, area, image id, k): a resumed or
repeated extraction makes the same pixels, in any DataLoader worker, and raising N keeps the
first views. The crop is drawn in fractions of the picture, so reduced-scale JPEG decoding
(``fast_decode``) cuts the same region.
"""

from __future__ import annotations

import hashlib
import math
from functools import cached_property

import numpy as np
from PIL import Image, ImageOps

from .constraints import Interval, check_settings
from .sources import ImageSource

__all__ = ["AugmentedViews", "VIEW_AREA", "CROP_RATIO"]

VIEW_AREA = 0.25
"""The smallest share of the picture's area a view keeps, by default (torchvision's
RandomResizedCrop keeps 0.08-1, which on the small collections this tool is for loses the
object too often; on Fashion-MNIST's 28-pixel garments even 0.25 costs accuracy)."""
CROP_RATIO = (3 / 4, 4 / 3)
"""Aspect ratios of the crop, as RandomResizedCrop."""
_ATTEMPTS = 10


def _crop_box(width: int, height: int, rng: np.random.Generator, min_area: float
              ) -> tuple[tuple[int, int, int, int], bool]:
    """RandomResizedCrop's sampling in fractions of the picture, keeping ``min_area`` to all
    of its area: a box ``(left, top, right, bottom)`` and whether to mirror. After
    ``_ATTEMPTS`` draws that do not fit, the whole picture (at once, when ``min_area`` is 1)."""
    box = (0.0, 0.0, 1.0, 1.0)
    for _ in range(_ATTEMPTS if min_area < 1 else 0):
        area = rng.uniform(min_area, 1.0)
        ratio = math.exp(rng.uniform(*np.log(CROP_RATIO)))
        crop_width = math.sqrt(area * ratio * height / width)  # fractions of width and height
        crop_height = math.sqrt(area * width / (ratio * height))
        if crop_width <= 1 and crop_height <= 1:
            left, top = rng.uniform() * (1 - crop_width), rng.uniform() * (1 - crop_height)
            box = (left, top, left + crop_width, top + crop_height)
            break
    mirror = bool(rng.uniform() < 0.5)
    left, top, right, bottom = (round(fraction * size) for fraction, size in zip(box, (width, height, width, height)))
    return (left, top, max(right, left + 1), max(bottom, top + 1)), mirror


class AugmentedViews(ImageSource):
    """``source``'s samples, then ``views`` augmented views of each of its training samples.

    Parameters
    ----------
    source : ImageSource
    views : int
        Views per training image (0: the source's rows only).
    seed : int
        Seeds every crop together with the image's id and the view's number.
    view_area : float
        The smallest share of the picture's area a crop keeps, in (0, 1]; 1: mirror only.

    Rows ``0 .. len(source) - 1`` are the source's own; view ``k`` (1-based) of a sample
    has the id ``<id>#view<k>``, the sample's label and split ``train``, and a fingerprint
    that adds the view, the seed and a changed area to the image's (so a changed seed or
    area recomputes views).
    """

    constraints = {"views": Interval(int, 0), "seed": Interval(int, 0),
                   "view_area": Interval(float, 0, 1, open_low=True, closed_high=True)}
    """What each setting accepts (``features.constraints``)."""

    def __init__(self, source: ImageSource, *, views: int, seed: int = 0, view_area: float = VIEW_AREA):
        check_settings(AugmentedViews, {"views": views, "seed": seed, "view_area": view_area})
        self.source = source
        self.views = views
        self.seed = seed
        self.view_area = view_area
        trained = np.flatnonzero(np.asarray(source.splits) == "train")
        self.image_of = np.concatenate([np.arange(len(source)), np.repeat(trained, views)]).astype(np.int64)
        self.view_of = np.concatenate([np.zeros(len(source), np.int64), np.tile(np.arange(1, views + 1), len(trained))])
        self.ids = [self._view_id(index) for index in range(len(self.image_of))]
        self.labels = np.asarray(source.labels)[self.image_of]
        self.splits = np.asarray(source.splits)[self.image_of]
        self.classes = source.classes
        self.name = source.name
        self.identity = source.identity  # views are rows: the store file stays the same

    def _view_id(self, index: int) -> str:
        image_id = self.source.ids[self.image_of[index]]
        return f"{image_id}#view{self.view_of[index]}" if self.view_of[index] else image_id

    @property
    def groups(self) -> list[str]:
        return [self.source.ids[index] for index in self.image_of]

    @cached_property
    def row_fingerprints(self) -> list[str]:
        own = self.source.row_fingerprints
        area = f"|area{self.view_area:g}" if self.view_area != VIEW_AREA else ""  # the default's views keep their rows
        return [own[image] + (f"|view{view}|seed{self.seed}{area}" if view else "")
                for image, view in zip(self.image_of, self.view_of)]

    def encoded_jpeg(self, index: int) -> bytes | None:
        """The plain view's file; a crop is made on the host."""
        return None if self.view_of[index] else self.source.encoded_jpeg(int(self.image_of[index]))

    def load(self, index: int, min_side: int | None = None) -> Image.Image:
        image, view = int(self.image_of[index]), int(self.view_of[index])
        if not view:
            return self.source.load(image, min_side)
        if min_side is not None and self.view_area < 1:  # the smallest crop's short side must still cover min_side
            min_side = math.ceil(min_side / math.sqrt(self.view_area * min(CROP_RATIO)))
        picture = self.source.load(image, min_side)
        digest = hashlib.sha256(f"{self.seed}\0{self.source.ids[image]}\0{view}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        box, mirror = _crop_box(*picture.size, rng, self.view_area)
        picture = picture.crop(box)
        return ImageOps.mirror(picture) if mirror else picture
