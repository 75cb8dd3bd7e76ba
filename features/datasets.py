"""Image sources by what names them (``open_source``), and datasets by name (``data.dataset``):
scikit-learn's digits and torchvision's downloads.

The torchvision datasets are downloaded once into ``data.root`` (torchvision's own code
does the download and the integrity check) and then read from there like any image
files, through the project's one image loader. Their own splits are used; where a
dataset has no validation split and ``val_size`` asks for one, it is carved out of
train, stratified. torchvision is imported when a dataset is opened, not before: the
runner fingerprints a named dataset's files (``dataset_fingerprint``) without it.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

import numpy as np

from .errors import FileInputError
from .files import file_stat
from .sources import ImageArrays, ImageFolder, ImageManifest, ImageSource, LabelledFiles, Split, stratified_splits

__all__ = ["NAMED_DATASETS", "SOURCE_KINDS", "DatasetUnavailable", "dataset_fingerprint", "dataset_root",
           "open_named_dataset", "open_source"]


class DatasetUnavailable(FileInputError):
    """A named dataset is neither in ``data.root`` nor downloadable (no internet)."""


def _download(factory: str, name: str, root: Path, **kwargs):
    """``torchvision.datasets.<factory>(root, download=True, **kwargs)``, with a plain message when offline."""
    from torchvision import datasets

    if root is None:
        raise ValueError(f"dataset {name} needs data.root, the folder to download it into")
    try:
        return getattr(datasets, factory)(root, download=True, **kwargs)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a failed check a RuntimeError
        raise DatasetUnavailable(
            f"cannot download dataset {name} into {root}: {error}; connect to the internet once "
            f"(the files are kept in data.root = {root} for later runs), or use an image folder "
            f"or a manifest instead"
        ) from error


def _with_val(labels: np.ndarray, splits: np.ndarray, split: Split) -> np.ndarray:
    """``splits`` with ``split.val_size`` of all samples moved from train to val, stratified."""
    if not split.val_size or "val" in splits:
        return splits
    train = np.flatnonzero(splits == "train")
    share = split.val_size * len(splits) / len(train)
    moved = stratified_splits(labels[train], test_size=share, seed=split.seed)
    splits = splits.copy()
    splits[train[moved == "test"]] = "val"
    return splits


def digits(root: Path | None, split: Split) -> ImageArrays:
    """scikit-learn's bundled handwritten digits: 1,797 real 8x8 images, 10 classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)  # pixel values are 0..16
    return ImageArrays(images, bunch.target, classes=bunch.target_names, splits=split(bunch.target), name="digits")


def cifar10(root: Path | None, split: Split) -> ImageArrays:
    """CIFAR-10: 50,000 train and 10,000 test 32x32 images, 10 classes."""
    parts = {split: _download("CIFAR10", "cifar10", root, train=split == "train")
             for split in ("train", "test")}
    labels = np.concatenate([part.targets for part in parts.values()])
    splits = np.repeat(list(parts), [len(part) for part in parts.values()])
    images = np.concatenate([part.data for part in parts.values()])
    return ImageArrays(images, labels, classes=parts["train"].classes, splits=_with_val(labels, splits, split),
                       name="cifar10")


def _files_of(name: str, factory, root: Path, splits: dict, files_attr: str, classes_of, split: Split):
    """A file source from torchvision dataset objects, one per split (``{ours: theirs}``).

    Labels are mapped through class names, since each split object numbers its own classes.
    """
    parts = {ours: _download(factory, name, root, split=theirs) for ours, theirs in splits.items()}
    classes = classes_of(parts["train"])
    files = [file for part in parts.values() for file in getattr(part, files_attr)]
    labels = np.array([classes.index(classes_of(part)[label]) for part in parts.values() for label in part._labels])
    split_of = np.repeat(list(parts), [len(part) for part in parts.values()])
    return LabelledFiles(root, files, labels, _with_val(labels, split_of, split), classes, name=name,
                         identity=f"torchvision:{name}:{Path(root).resolve()}")


def oxford_pets(root: Path | None, split: Split) -> LabelledFiles:
    """Oxford-IIIT Pet: 37 cat and dog breeds, 3,680 trainval and 3,669 test images."""
    return _files_of("oxford-pets", "OxfordIIITPet", root, {"train": "trainval", "test": "test"},
                     "_images", lambda part: part.classes, split)


def flowers102(root: Path | None, split: Split) -> LabelledFiles:
    """Oxford 102 Flowers: 102 classes, 10 train and 10 val images per class, 6,149 test."""
    return _files_of("flowers102", "Flowers102", root, {s: s for s in ("train", "val", "test")},
                     "_image_files", lambda part: [str(index + 1) for index in range(102)], split)


def dtd(root: Path | None, split: Split) -> LabelledFiles:
    """Describable Textures: 47 classes, 40 train, 40 val and 40 test images each (partition 1)."""
    return _files_of("dtd", "DTD", root, {s: s for s in ("train", "val", "test")},
                     "_image_files", lambda part: part.classes, split)


NAMED_DATASETS = {
    "digits": digits,
    "cifar10": cifar10,
    "oxford-pets": oxford_pets,
    "flowers102": flowers102,
    "dtd": dtd,
}
"""Datasets by name: ``(root, split) -> ImageSource``. Only ``digits`` ignores ``root`` (it is
bundled with scikit-learn) and uses ``split.test_size``: the others have splits of their own."""


BUNDLED = {"digits": "scikit-learn"}
"""Datasets that ship inside a package, by the package's name on PyPI."""


def dataset_fingerprint(name: str, root=None) -> str:
    """A cheap fingerprint of dataset ``name``'s content, without opening it: the version of
    the package it ships in, or the names, sizes and modification times of the files under
    ``root`` (where it was downloaded)."""
    if name in BUNDLED:
        return f"{name} in {BUNDLED[name]} {version(BUNDLED[name])}"
    root = Path(root) if root else None
    if root is None or not root.is_dir():
        return f"{name}: not downloaded"
    digest = hashlib.sha256(name.encode())
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(root)}\0{file_stat(path)}\n".encode())
    return digest.hexdigest()


def dataset_root(cache_dir, root=None) -> Path:
    """Where a named dataset is downloaded: ``root`` (``data.root``), by default ``<cache_dir>/datasets``."""
    return Path(root) if root else Path(cache_dir) / "datasets"


def open_named_dataset(name: str, *, root=None, split: Split = Split()) -> ImageSource:
    """The dataset ``name``, downloaded into ``root`` first if needed."""
    if name not in NAMED_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(NAMED_DATASETS)}")
    return NAMED_DATASETS[name](Path(root) if root else None, split)


SOURCE_KINDS = {
    "root": lambda value, split, root: ImageFolder(value, split=split),
    "manifest": lambda value, split, root: ImageManifest(value, split=split),
    "dataset": lambda value, split, root: open_named_dataset(value, root=root, split=split),
}
"""How each kind of source opens, by ``[data]``'s key: ``(value, split, dataset root) -> ImageSource``."""


def open_source(source, *, kind: str = "", split: Split = Split(), cache_dir="cache", root=None) -> ImageSource:
    """The image source that ``source`` names, as the ``extract`` stage and ``features.extract`` open it.

    Parameters
    ----------
    source : str, Path or ImageSource
        An ``ImageSource`` (returned as it is), a folder (``ImageFolder``), a manifest file
        (``ImageManifest``) or a named dataset (``NAMED_DATASETS``).
    kind : {"", "root", "manifest", "dataset"}
        What ``source`` is (``[data]``'s key that gave it); ``""``: found out from the path.
    split : Split
        The seeded stratified split of a source without splits of its own.
    cache_dir, root : path
        A named dataset downloads into ``root`` (``data.root``), by default ``<cache_dir>/datasets``.
    """
    if isinstance(source, ImageSource):
        return source
    path = Path(source)
    kind = kind or ("root" if path.is_dir() else "manifest" if path.is_file() else
                    "dataset" if str(source) in NAMED_DATASETS else "")
    if not kind:
        raise FileNotFoundError(f"image source {source} is neither a folder (<class>/<image>), a manifest file, an "
                                f"ImageSource nor a named dataset ({', '.join(NAMED_DATASETS)})")
    return SOURCE_KINDS[kind](source, split, dataset_root(cache_dir, root))
