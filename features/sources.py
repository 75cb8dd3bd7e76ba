"""Image sources: a labelled image collection as a table of samples.

A source knows, for each sample, an id (a relative path or an array index), a label, a
split, a cheap fingerprint of its content, and how to load the image as an RGB
``PIL.Image``. It knows nothing about CNNs; the extraction stage turns it into a
DataLoader. Sources are plain picklable objects so that DataLoader workers can load
images in parallel.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from .constraints import Interval, Rule, check_fields
from .errors import DataError, MissingFileError, SettingError
from .files import file_stat
from .images import load_image, readable_name, upright

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "SPLIT_FOLDERS",
    "ImageSource",
    "LabelledFiles",
    "ImageFolder",
    "ImageManifest",
    "ImageFiles",
    "ImageArrays",
    "Split",
    "stratified_splits",
    "class_name",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
JPEG_MAGIC = b"\xff\xd8\xff"
"""The first bytes of every JPEG file (start-of-image marker, then a segment marker)."""
SPLITS = ("train", "val", "test")
SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
"""Folder names that mark split folders (``<root>/<split>/<class>/*``), and their split."""
_LINES_SHOWN = 5  # line numbers named in an error before "(N in all)"


def class_name(label) -> str:
    """A label as its class name: stripped of surrounding spaces, the same way for every source,
    so that ``"cat"`` and ``"cat "`` are one class, never two."""
    return str(label).strip()


def _blank_labels(where: str, lines: list, what: str) -> DataError:
    """The error for labels that are empty once stripped, naming the first few ``lines``."""
    shown = ", ".join(map(str, lines[:_LINES_SHOWN]))
    more = f" ({len(lines)} in all)" if len(lines) > _LINES_SHOWN else ""
    return DataError(f"{where}: {what} {shown}{more} have an empty label; give every image a class name, "
                     f"or remove those images")


class ImageSource:
    """Interface of a sample table: ``ids``, ``labels``, ``splits``, ``classes``, ``load``.

    Attributes
    ----------
    ids : list of str, (n_samples,)
        Unique, valid UTF-8.
    labels : ndarray of int64, (n_samples,)
        Index into ``classes`` (-1 for unlabelled images).
    splits : ndarray of str, (n_samples,)
        ``train``, ``val`` or ``test`` (empty for unlabelled images).
    classes : list of str, (n_classes,)
    name : str
        Short readable name, used in store file names.
    identity : str
        Where the images come from (a resolved folder or manifest path, a dataset name):
        what the feature store's file name hashes, rather than the list of images, so
        that new images add rows to the same file.
    """

    name: str
    identity: str
    ids: list[str]
    labels: np.ndarray
    splits: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int, min_side: int | None = None) -> Image.Image:
        """Sample ``index`` as an RGB picture; ``min_side`` allows reduced-scale decoding (``load_image``)."""
        raise NotImplementedError

    def encoded_jpeg(self, index: int) -> bytes | None:
        """The bytes of sample ``index``'s JPEG file, when the sample is such a file shown as
        it is, for decoding on the device (``features.decode_on_device``); otherwise None."""
        return None

    @cached_property
    def row_fingerprints(self) -> list[str]:
        """Per sample, a cheap summary of its content; a changed image changes it."""
        raise NotImplementedError

    @property
    def groups(self) -> list[str]:
        """Per sample, the id of the image it shows: its own, except for augmented views."""
        return self.ids

    @property
    def split_rule(self) -> str:
        """What decides the splits, for ``fingerprint``: the splits themselves, unless a
        source makes them by a rule (``Split``)."""
        return "\0".join(self.splits)

    @cached_property
    def fingerprint(self) -> str:
        """A hash of everything about the samples that changes their codes or their rows.

        Cheap (file stat calls, no decoding), for the runner's staleness stamps; a source
        split by a rule is fingerprinted without making the split (that runs scikit-learn).
        """
        digest = hashlib.sha256()
        for item in (self.identity, *self.classes, self.split_rule):
            digest.update(item.encode() + b"\0")
        for row in zip(self.ids, self.labels, self.row_fingerprints):
            digest.update("\0".join(map(str, row)).encode() + b"\n")
        return digest.hexdigest()


def stratified_splits(labels: np.ndarray, *, test_size: float, val_size: float = 0.0, seed: int = 0,
                      classes=None) -> np.ndarray:
    """A seeded stratified train/val/test assignment, for sources without splits of their own.

    ``test_size`` and ``val_size`` are fractions of all samples, taken from each class alike.
    ``classes`` (the names of the label indices) lets a class too small to split be named.
    """
    from sklearn.model_selection import train_test_split  # here: a fingerprint needs no split, nor scikit-learn

    labels = np.asarray(labels)
    splits = np.full(len(labels), "train", dtype=object)
    try:
        rest, test = train_test_split(np.arange(len(labels)), test_size=test_size, stratify=labels,
                                      random_state=seed)
        splits[test] = "test"
        if val_size:
            _, val = train_test_split(rest, test_size=val_size / (1 - test_size), stratify=labels[rest],
                                      random_state=seed)
            splits[val] = "val"
    except ValueError as error:  # e.g. a class with a single image cannot be stratified
        counts = np.bincount(labels[labels >= 0], minlength=len(classes or ()))
        names = classes or [str(index) for index in range(len(counts))]
        small = [f"class {names[index]!r} has {count} image{'' if count == 1 else 's'}"
                 for index, count in enumerate(counts) if count < 2 + bool(val_size)]
        why = "; ".join(small[:_LINES_SHOWN]) or str(error)
        raise ValueError(
            f"cannot split {len(labels)} images into train/test (data.test_size = {test_size}, "
            f"data.val_size = {val_size}): {why}; add images to it, remove it, or give the splits yourself"
        ) from error
    return splits.astype(str)


@dataclass(frozen=True)
class Split:
    """How a source without splits of its own is split (``[data]``): a seeded stratified
    split, ``test_size`` and ``val_size`` of each class (``stratified_splits``), made from the
    labels when the splits are first read. What travels from a config or the Python API
    to every source.

    Parameters
    ----------
    test_size : float
        Fraction of each class in the test split, between 0 and 1.
    val_size : float
        Fraction of each class in the val split; at least 0 and less than ``1 - test_size``.
    seed : int
        Of the split.

    Named datasets with splits of their own keep them (``val_size`` is carved out of their
    train split); augmented views are rows added after the split, grouped with their image
    (``ImageSource.groups``), so the split has no group setting.
    """

    test_size: float = 0.25
    val_size: float = 0.0
    seed: int = 0

    constraints: ClassVar[dict] = {
        "test_size": Rule(Interval(float, 0, 1, open_low=True), hint="e.g. 0.25"),
        "val_size": Rule(Interval(float, 0, 1), hint="e.g. 0.1"),
        "seed": Interval(int, 0),
    }
    """What each setting accepts (``features.constraints``)."""

    def __post_init__(self):
        check_fields(self)
        if self.val_size >= 1 - self.test_size:
            raise SettingError(f"val_size = {self.val_size!r} must be less than 1 - test_size ({self.test_size!r}), "
                               f"to leave training images (e.g. 0.1)")

    def __call__(self, labels, classes=None) -> np.ndarray:
        """The splits of samples with ``labels``, ``(n_samples,)`` str."""
        return stratified_splits(labels, test_size=self.test_size, val_size=self.val_size, seed=self.seed,
                                 classes=classes)

    @property
    def rule(self) -> str:
        """What the source's fingerprint hashes for the split: as written before ``Split`` had
        its name, so that existing stores keep their fingerprint and stamps stay fresh."""
        return f"StratifiedSplit(test_size={self.test_size!r}, seed={self.seed!r}, val_size={self.val_size!r})"


class _RuleSplits:
    """Splits given, or made by a ``Split`` from the labels when first read."""

    _splits: Split | np.ndarray
    labels: np.ndarray

    @cached_property
    def splits(self) -> np.ndarray:
        rule = self._splits
        return np.asarray(rule(self.labels, self.classes) if isinstance(rule, Split) else rule).astype(str)

    @property
    def split_rule(self) -> str:
        return self._splits.rule if isinstance(self._splits, Split) else super().split_rule


class LabelledFiles(_RuleSplits, ImageSource):
    """Image files on disk with labels and splits: the common part of every file source.

    Parameters
    ----------
    root : Path
        Ids are paths relative to it.
    files : list of Path, (n_samples,)
    labels, classes
        As in ``ImageSource``.
    splits : array-like of str, or Split
        The splits, or the rule that makes them.
    name, identity : str
    ids : list of str, optional
        Default: the files' paths relative to ``root``.
    """

    def __init__(self, root: Path, files: list[Path], labels, splits, classes, *, name: str, identity: str,
                 ids: list[str] | None = None):
        self.root = Path(root)
        self.files = list(files)
        self.ids = ids or [readable_name(file.relative_to(self.root).as_posix()) for file in self.files]
        self.labels = np.asarray(labels, dtype=np.int64)
        self._splits = splits
        self.classes = [readable_name(class_name(name)) for name in classes]
        self.name = name
        self.identity = identity

    def load(self, index: int, min_side: int | None = None) -> Image.Image:
        return load_image(self.files[index], min_side)

    def encoded_jpeg(self, index: int) -> bytes | None:
        """The file's bytes if they start like a JPEG's (whatever the name says) and no EXIF
        tag turns the picture (nvJPEG ignores the tag: the host decodes those). An unreadable
        file is None too, so that ``load`` reports it."""
        try:
            data = self.files[index].read_bytes()
        except OSError:
            return None
        return data if data.startswith(JPEG_MAGIC) and upright(data) else None

    @cached_property
    def row_fingerprints(self) -> list[str]:
        return [file_stat(file) for file in self.files]


def _visible(folder: Path) -> list[Path]:
    """Sorted entries of ``folder`` whose names do not start with a dot (``.ipynb_checkpoints``)."""
    return sorted(path for path in folder.iterdir() if not path.name.startswith("."))


def _image_paths(folder: Path) -> list[str]:
    """The image files under ``folder`` as POSIX paths relative to it, in ``Path`` order,
    hidden files and folders left out.

    One ``scandir`` per folder and plain strings: a folder of 70,000 images is listed in a
    fraction of a second (the runner lists it on every ``status``).
    """
    found = []

    def walk(directory: str, parts: tuple[str, ...]) -> None:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    walk(entry.path, (*parts, entry.name))
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                    found.append((*parts, entry.name))

    walk(str(folder), ())
    return ["/".join(parts) for parts in sorted(found)]  # tuples of parts sort as Paths do


def _image_files(folder: Path) -> list[Path]:
    return [folder / path for path in _image_paths(folder)]


class ImageFolder(LabelledFiles):
    """Images on disk as ``root/<class>/*`` or ``root/<split>/<class>/*``.

    With split folders (``train``, ``val`` or ``validation``, ``test``) the splits are taken from them;
    otherwise ``split`` (a seeded stratified split) puts ``test_size`` (and ``val_size``) of
    each class in ``test`` (and ``val``). Classes are the sorted folder names, so label indices do not
    depend on listing order; a class folder without images is ignored with a warning.
    """

    def __init__(self, root: str | Path, *, split: Split = Split()):
        root = Path(root)
        if not root.is_dir():
            raise MissingFileError(
                f"image folder {root} does not exist; set data.root to a folder laid "
                f"out as <root>/<class>/<image> or <root>/<split>/<class>/<image>"
            )
        folders = [path.name for path in _visible(root) if path.is_dir()]
        has_splits = bool(folders) and set(folders) <= set(SPLIT_FOLDERS)
        found = {
            folder: _image_paths(folder)
            for split_root in ([root / name for name in folders] if has_splits else [root])
            for folder in _visible(split_root)
            if folder.is_dir()
        }
        for folder, paths in found.items():
            if not paths:
                log.warning("class folder %s has no images; ignored", readable_name(folder))
        blank = [repr(readable_name(folder.relative_to(root).as_posix())) for folder, paths in found.items()
                 if paths and not class_name(folder.name)]
        if blank:
            raise _blank_labels(f"image folder {readable_name(root)}", blank, "the class folders")
        classes = sorted({class_name(folder.name) for folder, paths in found.items() if paths})
        rows = [(folder / path, readable_name(f"{below_root}/{path}"), classes.index(class_name(folder.name)),
                 SPLIT_FOLDERS.get(folder.parent.name, ""))
                for folder, paths in found.items() for below_root in [folder.relative_to(root).as_posix()]
                for path in paths]
        if not rows and _image_paths(root):
            raise FileNotFoundError(
                f"the images under {readable_name(root)} are not in class folders; put them in one folder per "
                f"class (<root>/<class>/<image>), the folder's name being the class"
            )
        if not rows:
            raise FileNotFoundError(
                f"no images found under {readable_name(root)} (extensions: "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))}); expected <root>/<class>/<image> "
                f"or <root>/<split>/<class>/<image>"
            )
        files, ids, labels, splits = zip(*rows)
        if not has_splits:
            splits = split
        super().__init__(root, files, labels, splits, classes, name=root.resolve().name,
                         identity=f"folder:{root.resolve()}", ids=list(ids))


class ImageManifest(LabelledFiles):
    """Images listed in a CSV file with a header ``path,label[,split]``.

    Paths are relative to the manifest's folder and must stay inside it. Labels are class
    names. Without a split column (or with it empty everywhere) ``split`` is made, as for an
    image folder.
    """

    def __init__(self, manifest: str | Path, *, split: Split = Split()):
        manifest = Path(manifest)
        try:
            with open(manifest, newline="", encoding="utf-8") as file:
                reader = csv.DictReader(file)
                records = list(reader)
                columns = reader.fieldnames or []
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise FileNotFoundError(f"cannot read manifest {manifest}: {error}") from error
        if not {"path", "label"} <= set(columns) or not set(columns) <= {"path", "label", "split"}:
            raise ValueError(
                f"manifest {manifest} has columns {', '.join(columns) or 'none'}; expected a header "
                f"line path,label or path,label,split"
            )
        if not records:
            raise ValueError(f"manifest {manifest} lists no images")
        folder = manifest.resolve().parent
        files, seen = [], set()
        for line, record in enumerate(records, start=2):
            file = (folder / record["path"]).resolve()
            if not file.is_relative_to(folder):
                raise ValueError(
                    f"manifest {manifest} line {line}: path {record['path']!r} is outside the "
                    f"manifest's folder {folder}; move the manifest up or the images in"
                )
            if file in seen:
                raise ValueError(f"manifest {manifest} line {line}: path {record['path']!r} is listed twice")
            given = record.get("split") or ""
            if given not in ("", *SPLITS) or bool(given) != bool(records[0].get("split")):
                raise ValueError(
                    f"manifest {manifest} line {line}: split {given!r} is not valid; use "
                    f"{', '.join(SPLITS)} on every line, or leave the column out"
                )
            files.append(file)
            seen.add(file)
        blank = [line for line, record in enumerate(records, start=2) if not class_name(record["label"] or "")]
        if blank:
            raise _blank_labels(f"manifest {manifest}", blank, "lines")
        classes = sorted({class_name(record["label"]) for record in records})
        labels = [classes.index(class_name(record["label"])) for record in records]
        splits = ([record["split"] for record in records] if records[0].get("split")
                  else split)
        super().__init__(folder, files, labels, splits, classes, name=manifest.stem,
                         identity=f"manifest:{manifest.resolve()}")


class ImageFiles(LabelledFiles):
    """Unlabelled image files (for prediction): files as given, folders searched recursively.

    Ids are the paths as given (folders: joined with the path below them). Labels are -1
    and splits empty.
    """

    def __init__(self, paths):
        files = []
        for path in map(Path, paths):
            if path.is_dir():
                files += _image_files(path)
            elif path.is_file():
                files.append(path)
            else:
                raise MissingFileError(f"{readable_name(path)} is neither an image file nor a folder")
        if not files:
            raise FileNotFoundError(f"no images found in {', '.join(map(readable_name, paths))}")
        super().__init__(Path.cwd(), files, np.full(len(files), -1), np.full(len(files), ""), [],
                         name="files", identity="files", ids=[readable_name(file) for file in files])


class ImageArrays(_RuleSplits, ImageSource):
    """Images held in memory as a ``(n_samples, height, width[, 3])`` uint8 array.

    Parameters
    ----------
    images : array-like of uint8, (n_samples, height, width) or (n_samples, height, width, 3)
    labels : array-like of int, (n_samples,)
        Indices into ``classes``.
    classes : list of str, optional
        Class names; by default ``"0"``, ``"1"``, ... up to the largest label.
    splits : array-like of str, optional
        ``train``, ``val`` or ``test`` per image; by default ``split`` makes them.
    name : str, optional
        Names the store of these images' codes; by default ``arrays-`` and a hash of the
        images and labels, so that other arrays never share their store.
    split : Split
        The seeded stratified split of images without ``splits`` (as ``[data]`` in a config).
    """

    def __init__(self, images, labels, *, classes=None, splits=None, name: str | None = None, split: Split = Split()):
        self.images = np.asarray(images, dtype=np.uint8)
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.images.ndim not in (3, 4) or len(self.images) != len(self.labels):
            raise ValueError(f"images must be (n_samples, height, width[, 3]) with one label each; got images of "
                             f"shape {self.images.shape} and {len(self.labels)} labels")
        self.classes = [class_name(name) for name in (range(self.labels.max() + 1) if classes is None else classes)]
        if not all(self.classes) or len(set(self.classes)) < len(self.classes):
            raise ValueError(f"classes {classes!r} has an empty name, or two names that differ only by surrounding "
                             f"spaces; give every class its own non-empty name")
        self._splits = split if splits is None else np.asarray(splits)
        self.ids = [str(index) for index in range(len(self.images))]
        if name is None:  # from the rows' fingerprints, which extraction needs anyway
            rows = "\0".join(f"{fingerprint}:{label}" for fingerprint, label in zip(self.row_fingerprints, self.labels))
            name = f"arrays-{hashlib.sha256(rows.encode()).hexdigest()[:12]}"
        self.name = name
        self.identity = f"arrays:{name}"

    def load(self, index: int, min_side: int | None = None) -> Image.Image:
        return Image.fromarray(self.images[index]).convert("RGB")

    @cached_property
    def row_fingerprints(self) -> list[str]:
        return [hashlib.sha256(image.tobytes()).hexdigest()[:16] for image in self.images]
