"""Image sources: a labelled image collection as a table of samples.

A source knows, for each sample, an id (a relative path or an array index), a label, a
split, and how to load the image as an RGB ``PIL.Image``. It knows nothing about CNNs; the
extraction stage turns it into a DataLoader. Sources are plain picklable objects so that
DataLoader workers can load images in parallel.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from sklearn.model_selection import train_test_split

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "NAMED_DATASETS",
    "ImageSource",
    "ImageFolder",
    "ImageArrays",
    "digits",
    "open_named_dataset",
    "stratified_splits",
]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
SPLITS = ("train", "val", "test")


class ImageSource:
    """Interface of a sample table: ``ids``, ``labels``, ``splits``, ``classes``, ``load``.

    Attributes
    ----------
    ids : list of str, (n_samples,)
    labels : ndarray of int64, (n_samples,)
        Index into ``classes``.
    splits : ndarray of str, (n_samples,)
        ``train``, ``val`` or ``test``.
    classes : list of str, (n_classes,)
    name : str
        Short readable name, used in store file names.
    """

    name: str
    ids: list[str]
    labels: np.ndarray
    splits: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Image.Image:
        raise NotImplementedError

    @cached_property
    def fingerprint(self) -> str:
        """A hash of everything about the samples that changes their codes or their rows."""
        return self._fingerprint()

    def _fingerprint(self) -> str:
        raise NotImplementedError

    def _hash_rows(self, *extra: str) -> str:
        digest = hashlib.sha256()
        for item in (*extra, *self.classes):
            digest.update(item.encode() + b"\0")
        for sample_id, label, split in zip(self.ids, self.labels, self.splits):
            digest.update(f"{sample_id}\0{label}\0{split}\n".encode())
        return digest.hexdigest()


def stratified_splits(labels: np.ndarray, test_size: float, seed: int) -> np.ndarray:
    """A seeded stratified train/test assignment, for sources without splits of their own."""
    indices = np.arange(len(labels))
    _, test = train_test_split(indices, test_size=test_size, stratify=labels, random_state=seed)
    splits = np.full(len(labels), "train", dtype=object)
    splits[test] = "test"
    return splits.astype(str)


def _subfolders(folder: Path) -> list[str]:
    """Sorted names of the visible sub-folders (``.ipynb_checkpoints`` and the like are skipped)."""
    return sorted(path.name for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))


class ImageFolder(ImageSource):
    """Images on disk as ``root/<class>/*`` or ``root/<split>/<class>/*``.

    With split folders (``train``, ``val``, ``test``) the splits are taken from them;
    otherwise a seeded stratified split puts ``test_size`` of each class in ``test``.
    Classes are the sorted folder names, so label indices do not depend on listing order.
    """

    def __init__(self, root: str | Path, test_size: float = 0.25, seed: int = 0):
        self.root = Path(root)
        self.name = self.root.resolve().name
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"image folder {self.root} does not exist; set data.root to a folder laid "
                f"out as <root>/<class>/<image> or <root>/<split>/<class>/<image>"
            )
        folders = _subfolders(self.root)
        has_splits = bool(folders) and set(folders) <= set(SPLITS)
        split_roots = {name: self.root / name for name in folders} if has_splits else {"": self.root}
        self.classes = sorted({name for folder in split_roots.values() for name in _subfolders(folder)})
        rows = [
            (path.relative_to(self.root).as_posix(), label, split)
            for split, folder in split_roots.items()
            for label, name in enumerate(self.classes)
            if (folder / name).is_dir()
            for path in sorted((folder / name).rglob("*"))
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
        ]
        if not rows:
            raise FileNotFoundError(
                f"no images found under {self.root} (extensions: "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))}); expected <root>/<class>/<image> "
                f"or <root>/<split>/<class>/<image>"
            )
        self.ids = [row[0] for row in rows]
        self.labels = np.array([row[1] for row in rows], dtype=np.int64)
        self.splits = (
            np.array([row[2] for row in rows])
            if has_splits
            else stratified_splits(self.labels, test_size, seed)
        )

    def load(self, index: int) -> Image.Image:
        path = self.root / self.ids[index]
        try:
            with Image.open(path) as image:
                return ImageOps.exif_transpose(image).convert("RGB")
        except (OSError, UnidentifiedImageError) as error:
            raise OSError(f"cannot read image {path}: {error}; remove or replace the file") from error

    def _fingerprint(self) -> str:
        stats = [(self.root / sample_id).stat() for sample_id in self.ids]
        files = "".join(f"{stat.st_size}:{stat.st_mtime_ns};" for stat in stats)
        return self._hash_rows("folder", files)


class ImageArrays(ImageSource):
    """Images held in memory as a ``(n_samples, height, width[, 3])`` uint8 array."""

    def __init__(self, images: np.ndarray, labels, classes, splits, name: str = "arrays"):
        self.images = np.asarray(images, dtype=np.uint8)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = [str(name) for name in classes]
        self.splits = np.asarray(splits).astype(str)
        self.ids = [str(index) for index in range(len(self.images))]
        self.name = name

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index]).convert("RGB")

    def _fingerprint(self) -> str:
        return self._hash_rows(self.name, hashlib.sha256(self.images.tobytes()).hexdigest())


def digits(test_size: float = 0.25, seed: int = 0) -> ImageArrays:
    """scikit-learn's bundled handwritten digits: 1,797 real 8x8 images, 10 classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)  # pixel values are 0..16
    splits = stratified_splits(bunch.target, test_size, seed)
    return ImageArrays(images, bunch.target, bunch.target_names, splits, name="digits")


NAMED_DATASETS = {"digits": digits}
"""Datasets available by name (``data.dataset``): a function ``(test_size, seed) -> source``."""


def open_named_dataset(name: str, test_size: float = 0.25, seed: int = 0) -> ImageSource:
    if name not in NAMED_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(NAMED_DATASETS)}")
    return NAMED_DATASETS[name](test_size=test_size, seed=seed)
