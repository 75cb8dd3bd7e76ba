"""The feature store: CNN codes of one image source and one backbone in one HDF5 file.

Layout (plain h5py reads it; see docs/feature-store.md)::

    /                             attrs: format_version, backbone, weights, preprocessing, dtype, ...
    /classes                      (n_classes,) utf-8
    /samples/id                   (n_rows,) utf-8   relative path or array index
    /samples/fingerprint          (n_rows,) utf-8   size:mtime_ns of the file it was computed from
    /samples/label                (n_rows,) int64   index into /classes, -1: not in the source now
    /samples/split                (n_rows,) utf-8   train / val / test, "": not in the source now
    /samples/skipped              (n_rows,) utf-8   why the image was skipped, "" if it was not
/samples/group                (n_rows,) utf-8   the id of the image a row shows: its own id, or for an
                                                augmented view (``features.views``) its image's id
    /samples/done/<tap>/<pool>    (n_rows,) bool    the row's codes are written
    /features/<tap>/<pool>        (n_rows, n_features) float32 or float16, chunked by rows;
                                  attrs: tap, pooling, complete
/features/<tap>/none          (n_rows, C, H, W) the tap's whole map, float16 by default (``map_dtype``)
    /checksums/<tap>/<pool>       (n_blocks,) uint32  CRC-32 of each block of rows (``features.checksums``)

Each codes dataset also has the attribute ``rows_digest``: a hash of what reading it gives
(the rows in use, their images' fingerprints, labels, splits and groups, the classes, the
row shape and type, whether it is complete), so that a reader can tell whether another
run changed it without reading codes (``codes_fingerprint``).

A row is *in use* when its split is not empty and it was not skipped; a codes dataset is
``complete`` when every row in use is done. The reader API (``FeatureStore``,
``read_codes``) shows only rows in use, and only complete codes.

Readers check each block of codes they read against its checksum and for NaN or infinite
values, and refuse a damaged dataset by name (``StoreError``).

The file is never modified in place: ``rewrite_store`` writes a copy and renames it over
the old one, so a reader (or a killed writer) only ever sees a whole file.
This module is the only reader of the files: ``classifiers`` goes through it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from . import checksums
from .errors import CnnCodesError, FileInputError
from .files import MISSING, write_atomic
from .pooling import MAP

__all__ = [
    "FORMAT_VERSION",
    "codes_fingerprint",
    "consolidate_store",
    "FeatureStore",
    "StoreError",
    "SampleTable",
    "read_codes",
    "read_table",
    "rewrite_store",
    "verify_store",
]

FORMAT_VERSION = 2
_TEXT = h5py.string_dtype("utf-8")
_PIECES = 8  # pieces of different chunks that make a shuffled block (``FeatureStore.blocks``)
_SAMPLE_TEXT = ("id", "fingerprint", "split", "skipped", "group")

log = logging.getLogger(__name__)


class StoreError(FileInputError):
    """A feature store file is missing, unreadable or lacks the codes asked for."""


def _text(dataset) -> np.ndarray:
    return dataset.asstr()[()].astype(object) if len(dataset) else np.array([], dtype=object)


def _dataset_name(tap: str, pooling: str) -> str:
    return f"{tap}/{pooling}"


def _dtype_of(attrs, pooling: str) -> str:
    """The storage type of a codes dataset: maps have their own (they are 10-100x larger)."""
    return attrs.get("map_dtype", "float16") if pooling == MAP else attrs["dtype"]


@dataclass
class SampleTable:
    """The rows of a store and what is known about each, as plain arrays.

    ``done`` maps ``(tap, pooling)`` to a ``(n_rows,)`` bool array: which rows of that codes
    dataset are written.
    """

    ids: list
    fingerprints: list
    labels: np.ndarray
    splits: np.ndarray
    skipped: list
    classes: list
    done: dict = field(default_factory=dict)
    groups: list | None = None
    """Per row, the id of the image it shows (views share their image's); None: each row its own."""

    def in_use(self) -> np.ndarray:
        """``(n_rows,)`` bool: rows of the current source that were not skipped."""
        return (np.asarray(self.splits) != "") & (np.asarray(self.skipped) == "")

    def complete(self, key) -> bool:
        return bool(self.done[key][self.in_use()].all())


def _open(path: Path, mode: str = "r") -> h5py.File:
    try:
        return h5py.File(path, mode)
    except OSError as error:
        raise StoreError(f"cannot read feature store {path}: {error}; delete the file and run extract again") from error


def _read_table(file: h5py.File) -> SampleTable:
    samples = file["samples"]
    table = SampleTable(
        *(list(_text(samples[name])) for name in ("id", "fingerprint")),
        labels=samples["label"][()],
        splits=_text(samples["split"]),
        skipped=list(_text(samples["skipped"])),
        classes=list(_text(file["classes"])),
        groups=list(_text(samples["group"])) if "group" in samples else None,  # format 2 files lack it
    )

    def collect(name, item):
        if isinstance(item, h5py.Dataset):
            key = (item.attrs["tap"], item.attrs["pooling"])
            table.done[key] = samples["done"][name][()]

    file["features"].visititems(collect)
    return table


def read_table(path: str | Path) -> SampleTable | None:
    """The sample table and done markers of the store at ``path``; None if there is none."""
    path = Path(path)
    if not path.exists():
        return None
    with _open(path) as file:
        try:
            return _read_table(file)
        except (KeyError, ValueError, OSError) as error:
            raise StoreError(f"feature store {path} is not in the expected layout ({error}); "
                             f"delete it and run extract again") from error


def _write_text(group, name: str, values) -> None:
    """Set a text column, leaving it alone when unchanged (HDF5 does not reuse freed space)."""
    values = np.array(list(values), dtype=object)
    if name in group:
        if len(group[name]) == len(values) and (_text(group[name]) == values).all():
            return
        del group[name]
    group.create_dataset(name, data=values, dtype=_TEXT)


def write_samples(file: h5py.File, table: SampleTable) -> h5py.Group:
    """Write ``table``'s columns and classes into ``file`` (unchanged text columns are left alone)."""
    samples = file.require_group("samples")
    for name, values in zip(_SAMPLE_TEXT, (table.ids, table.fingerprints, table.splits, table.skipped,
                                           table.groups or table.ids)):
        _write_text(samples, name, values)
    if "label" in samples:
        del samples["label"]
    samples.create_dataset("label", data=np.asarray(table.labels, dtype=np.int64))
    _write_text(file, "classes", table.classes)
    return samples


def _rows_digest(table: SampleTable, key: tuple[str, str], dataset) -> str:
    """A hash of what reading codes dataset ``key`` gives (see the module's docstring)."""
    in_use = np.flatnonzero(table.in_use())
    digest = hashlib.sha256(f"{key}\0{dataset.shape[1:]}\0{dataset.dtype}\0{table.complete(key)}".encode())
    digest.update("\0".join(table.classes).encode() + b"\n")
    groups = table.groups or table.ids
    for row in in_use:
        fields = (table.ids[row], table.fingerprints[row], table.labels[row], table.splits[row], groups[row])
        digest.update("\0".join(map(str, fields)).encode() + b"\n")
    return digest.hexdigest()[:16]


def write_done(file: h5py.File, table: SampleTable) -> None:
    """Write ``table.done`` as the done markers, and each codes dataset's ``complete`` and
    ``rows_digest`` attributes."""
    done = file.require_group("samples").require_group("done")
    for (tap, pooling), markers in table.done.items():
        name = _dataset_name(tap, pooling)
        if name not in done:
            done.create_dataset(name, shape=(len(markers),), dtype=bool, maxshape=(None,))  # resizable
        done[name][...] = markers
        dataset = file["features"][name]
        dataset.attrs["complete"] = table.complete((tap, pooling))
        dataset.attrs["rows_digest"] = _rows_digest(table, (tap, pooling), dataset)


def rewrite_store(path: str | Path, table: SampleTable, attrs: dict, write_codes) -> None:
    """Write the store at ``path`` anew (a copy of the old one, changed), then rename it in place.

    Parameters
    ----------
    table : SampleTable
        The rows to have afterwards; old rows keep their positions, new rows come last.
        ``table.done`` says which rows of the existing codes stay valid.
    attrs : dict
        File attributes to set.
    write_codes : callable
        ``write_codes(put)``, where ``put(tap, pooling, rows, codes)`` writes
        ``(len(rows), n_features)`` codes at row positions ``rows`` (an int array) and marks
        them done. It is called after the sample table is in place.
    """
    path = Path(path)
    write_atomic(path, lambda partial: _rewrite(partial, path, table, attrs, write_codes), start_from_old=True)


def _rewrite(partial: Path, path: Path, table: SampleTable, attrs: dict, write_codes) -> None:
    n_rows = len(table.ids)
    with h5py.File(partial, "r+" if partial.exists() else "w") as file:
        file.attrs.update({"format_version": FORMAT_VERSION, **attrs})
        samples = write_samples(file, table)
        features, done = file.require_group("features"), samples.require_group("done")
        _materialise(features, path.parent)
        rewrites = {}  # codes dataset -> its checksums through this rewrite
        for key, markers in table.done.items():
            name = _dataset_name(*key)
            rewrites[name] = checksums.Rewrite(file, name)
            if features[name].shape[0] < n_rows:
                rewrites[name].changing(from_row=features[name].shape[0])
            features[name].resize(n_rows, axis=0)
            done[name].resize(n_rows, axis=0)

        def put(tap: str, pooling: str, rows: np.ndarray, codes: np.ndarray) -> None:
            name = _dataset_name(tap, pooling)
            if name not in features:
                dtype, row = np.dtype(_dtype_of(attrs, pooling)), codes.shape[1:]
                per_chunk = max(1, checksums.CHUNK_BYTES // (int(np.prod(row)) * dtype.itemsize))
                features.create_dataset(name, shape=(n_rows, *row), dtype=dtype,
                                        maxshape=(None, *row), chunks=(per_chunk, *row))
                features[name].attrs.update({"tap": tap, "pooling": pooling})
                table.done[(tap, pooling)] = np.zeros(n_rows, dtype=bool)
                rewrites[name] = checksums.Rewrite(file, name)
            rewrites[name].changing(rows)
            order = np.argsort(rows)  # h5py writes to increasing positions only
            features[name][rows[order]] = codes[order]
            table.done[(tap, pooling)][rows] = True

        write_codes(put)
        for rewrite in rewrites.values():
            rewrite.finish()
        write_done(file, table)


def _virtual_datasets(features: h5py.Group) -> list[str]:
    names = []
    features.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset)
                        and item.is_virtual else None)
    return names


def _materialise(features: h5py.Group, folder: Path) -> None:
    """Virtual codes datasets (a store joined from shards, ``features.shards``) as ordinary
    ones, copied a chunk of rows at a time, so that they can be resized and written."""
    for name in _virtual_datasets(features):
        virtual = features[name]
        with h5py.File(folder / virtual.virtual_sources()[0].file_name) as shard:  # chunking as the shards'
            chunks = shard[virtual.virtual_sources()[0].dset_name].chunks
        copy = features.create_dataset(f"{name}.copy", shape=virtual.shape, dtype=virtual.dtype,
                                       maxshape=(None, *virtual.shape[1:]), chunks=chunks)
        for start in range(0, virtual.shape[0], chunks[0]):
            copy[start : start + chunks[0]] = virtual[start : start + chunks[0]]
        copy.attrs.update(dict(virtual.attrs))
        del features[name]
        features.move(f"{name}.copy", name)


def consolidate_store(path: str | Path) -> None:
    """Make a store joined from shards (``torchrun`` extraction) one self-contained file: its
    virtual datasets become ordinary ones (a copy of the codes), after which the shard files
    beside it are no longer read and may be deleted or left behind when copying the store."""
    path = Path(path)

    def materialise(partial: Path) -> None:
        with h5py.File(partial, "r+") as file:
            _materialise(file["features"], path.parent)

    write_atomic(path, materialise, start_from_old=True)


def _missing_shards(file: h5py.File, folder: Path) -> list[str]:
    """Shard files that a joined store's virtual datasets read and that are not there."""
    return sorted({source.file_name for name in _virtual_datasets(file["features"])
                   for source in file["features"][name].virtual_sources()
                   if not (folder / source.file_name).is_file()})


class FeatureStore:
    """An open feature store file, for reading.

    ``ids``, ``labels`` and ``splits`` describe the rows in use (the images of the source
    as of the last extraction, less the skipped ones), in file order; ``codes`` returns
    rows in the same order.

    Parameters
    ----------
    path : str or Path
    source : ImageSource, optional
        The images the codes were made from, when known (``features.extract`` gives it):
        a report shows them beside its results.
    """

    def __init__(self, path: str | Path, source=None):
        self.path = Path(path)
        self.source = source
        if not self.path.is_file():
            raise StoreError(f"feature store {self.path} does not exist; run extract first")
        self._file = _open(self.path)
        try:
            self.attrs = dict(self._file.attrs)
            self._table = _read_table(self._file)
            missing = _missing_shards(self._file, self.path.parent)
        except (KeyError, ValueError, OSError) as error:
            self._file.close()
            raise StoreError(f"feature store {self.path} is not in the expected layout ({error}); "
                             f"delete it and run extract again") from error
        if missing:
            self._file.close()
            raise StoreError(f"feature store {self.path} was joined from shards that are missing beside it: "
                             f"{', '.join(missing)}; copy them back, or delete the store and run extract again")
        self._rows = np.flatnonzero(self._table.in_use())
        self._checksums = {}  # codes dataset -> its checksums, loaded when first read
        unchecked = [name for name in (_dataset_name(*key) for key in self._table.done)
                     if not checksums.has_checksums(self._file, name)]
        if unchecked:
            log.info("feature store %s carries no checksums for %s (written before they existed): read "
                     "unchecked", self.path, ", ".join(unchecked))
        self.classes = self._table.classes
        self.ids = [self._table.ids[row] for row in self._rows]
        self.labels = self._table.labels[self._rows]
        self.splits = np.asarray(self._table.splits)[self._rows].astype(str)
        self.groups = np.asarray(self._table.groups or self._table.ids, dtype=object)[self._rows]
        """Per row in use, the id of the image it shows (augmented views share their image's)."""
        skipped = self._table.skipped
        self.skipped = [(self._table.ids[row], reason) for row, reason in enumerate(skipped)
                        if reason and self._table.splits[row] != ""]
        """``[(id, reason)]``: images of the source that could not be read."""

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self.ids)

    def available(self) -> list[tuple[str, str]]:
        """The complete ``(tap, pooling)`` datasets."""
        return [key for key in self._table.done if self._table.complete(key)]

    def has(self, tap: str, pooling: str) -> bool:
        return (tap, pooling) in self.available()

    def codes(self, tap: str, pooling: str, split: str | None = None):
        """The codes of one tap and pooling, for one split or all rows in use.

        Only the chunks holding the rows asked for are read.

        Returns
        -------
        X : ndarray, (n_rows, n_features) float32, or (n_rows, C, H, W) for pooling ``none``
            Maps keep their storage type (float16 by default): they can be gigabytes.
        y : ndarray, (n_rows,) int64
            Label indices into ``classes``.
        """
        wanted = np.ones(len(self.ids), bool) if split is None else self.splits == split
        return self._read(tap, pooling, self._rows[wanted]), self.labels[wanted]

    def row_shape(self, tap: str, pooling: str) -> tuple[int, ...]:
        """The shape of one row of codes: ``(n_features,)``, or ``(C, H, W)`` for a map."""
        return self._dataset(tap, pooling)[0].shape[1:]

    @staticmethod
    def most_blocks(n_rows: int, max_rows: int) -> int:
        """The most blocks ``blocks`` yields for ``n_rows`` rows of at most ``max_rows`` each:
        every block but the last is short of ``max_rows`` by less than one piece."""
        return (n_rows - 1) // (max_rows - max(1, max_rows // _PIECES) + 1) + 1 if n_rows else 0

    def blocks(self, tap: str, pooling: str, positions: np.ndarray, max_rows: int, seed: int | None = None):
        """The codes of the rows in use at ``positions`` (indices into ``ids``), as ``(X, y)``
        blocks of at most ``max_rows`` rows, one block in memory at a time.

        For learners that cannot hold all codes at once (``classifiers.fit_in_blocks``).
        Without ``seed`` the blocks follow the file's order. With it they are shuffled for
        stochastic learning: pieces of the file's chunks (at most 1/8 of a block each) in a
        random order, and the rows within each block; rows are still read a whole chunk at a
        time (a store is ordered by split and class, so blocks in file order would each hold
        one class).
        """
        positions = np.sort(np.asarray(positions, dtype=np.int64))
        chunk_of = self._rows[positions] // checksums.rows_per_block(self._dataset(tap, pooling)[0])
        pieces = np.split(positions, np.flatnonzero(np.diff(chunk_of)) + 1) if len(positions) else []
        piece_rows = max(1, max_rows // _PIECES)  # at least _PIECES chunks' rows in a shuffled block
        pieces = [part for piece in pieces for part in np.array_split(piece, -(-len(piece) // piece_rows))]
        rng = np.random.default_rng(seed)
        if seed is not None:
            pieces = [pieces[index] for index in rng.permutation(len(pieces))]
        block = []
        for index, piece in enumerate(pieces):
            block.append(piece)
            if index + 1 < len(pieces) and sum(map(len, block)) + len(pieces[index + 1]) <= max_rows:
                continue
            rows = np.sort(np.concatenate(block))
            X, y = self._read(tap, pooling, self._rows[rows]), self.labels[rows]
            order = rng.permutation(len(rows)) if seed is not None else slice(None)
            yield X[order], y[order]
            block = []

    def _dataset(self, tap: str, pooling: str):
        """The complete codes dataset of ``tap``/``pooling`` and the type it is read as."""
        if not self.has(tap, pooling):
            have = ", ".join(f"{t}/{p}" for t, p in self.available()) or "none"
            raise StoreError(
                f"{self.path} has no complete codes for tap {tap!r} with pooling {pooling!r} "
                f"(it has: {have}); run extract with that tap and pooling"
            )
        dataset = self._file["features"][_dataset_name(tap, pooling)]
        return dataset, dataset.dtype if pooling == MAP else np.float32

    def _read(self, tap: str, pooling: str, rows: np.ndarray) -> np.ndarray:
        """The codes of file rows ``rows``, each block read checked against its checksum and for
        NaN or infinite values: a damaged store is refused by name, never fitted."""
        dataset, dtype = self._dataset(tap, pooling)
        name = _dataset_name(tap, pooling)
        sums = self._checksums.get(name)
        if sums is None and checksums.has_checksums(self._file, name):
            sums = self._checksums[name] = checksums.Checksums(self._file, name)
        what = f"feature store {self.path}: the codes of tap {tap!r} with pooling {pooling!r}"
        try:
            X = _read_rows(dataset, rows, dtype, sums)
        except _Damaged as damaged:
            raise StoreError(f"{what} fail their checksum in rows {damaged.first}-{damaged.last} (they changed "
                             f"after they were written: a disk fault or an edit); delete the file and run "
                             f"extract again") from None
        bad = int((~np.isfinite(X.reshape(len(X), -1))).any(axis=1).sum()) if X.size else 0
        if bad:
            raise StoreError(f"{what} hold NaN or infinite values in {bad} of {len(X)} rows read; no classifier "
                             f"can fit them: delete the file and run extract again (if they come back, the "
                             f"network overflows: try features.precision = \"float32\" or another tap)")
        return X


class _Damaged(CnnCodesError):
    """A block of rows read fails its checksum."""

    def __init__(self, first: int, last: int):
        self.first, self.last = first, last


def _read_rows(dataset, rows: np.ndarray, dtype=np.float32, sums: checksums.Checksums | None = None) -> np.ndarray:
    """``dataset[rows]`` as ``dtype``, reading whole chunks (h5py's point selection is slow),
    each checked against ``sums`` when given (``_Damaged`` when one fails)."""
    step = sums.block_rows if sums else checksums.rows_per_block(dataset)
    blocks = []
    for start in np.unique(rows // step) * step:
        inside = rows[(rows >= start) & (rows < start + step)]
        block = dataset[start : start + step]
        if sums and not sums.matches(start, block):
            raise _Damaged(int(start), int(start) + len(block) - 1)
        blocks.append(block[inside - start])
    if not blocks:
        return np.empty((0, *dataset.shape[1:]), dtype)
    return np.concatenate(blocks).astype(dtype, copy=False)


def read_codes(path: str | Path, tap: str, pooling: str, split: str | None = None):
    """``(X, y)`` of one tap and pooling from the store at ``path``, for one split or all rows.

    The reader API for code outside ``features``: it opens the file, reads the rows of the
    one codes dataset asked for and closes the file again.

    Returns
    -------
    X : ndarray, (n_rows, n_features) float32
    y : ndarray, (n_rows,) int64
    """
    with FeatureStore(path) as store:
        return store.codes(tap, pooling, split)


def codes_fingerprint(path: str | Path, tap: str, pooling: str) -> str:
    """What reading ``tap``/``pooling`` from the store at ``path`` gives, as a short hash:
    unchanged when another run adds taps, poolings or rows not in use, or rewrites the file
    without changing these codes. ``missing`` when the file or the dataset is not there.

    Cheap: one attribute (stores written before it existed: a hash of the sample table).
    """
    path = Path(path)
    if not path.is_file():
        return MISSING
    with _open(path) as file:
        name = _dataset_name(tap, pooling)
        if name not in file.get("features", {}):
            return MISSING
        dataset = file["features"][name]
        if "rows_digest" in dataset.attrs:
            return str(dataset.attrs["rows_digest"])
        return _rows_digest(_read_table(file), (tap, pooling), dataset)


def verify_store(path: str | Path) -> list[str]:
    """The problems of the store at ``path``; an empty list when it is sound.

    Checks that the file opens and has the layout, that the sample columns agree in
    length, labels index ``/classes``, every codes dataset has one row per sample and
    its done markers, complete datasets have every row in use written, every block of
    codes matches its checksum, and written rows hold finite numbers only. A store with
    no codes at all is a problem; one written before checksums existed is not (a warning
    says it carries none).
    """
    path = Path(path)
    try:
        table = read_table(path)
    except StoreError as error:
        return [str(error)]
    if table is None:
        return [f"{path} does not exist"]
    problems = []
    n_rows = len(table.ids)
    lengths = {"fingerprint": len(table.fingerprints), "label": len(table.labels),
               "split": len(table.splits), "skipped": len(table.skipped)}
    problems += [f"/samples/{name} has {length} rows, /samples/id {n_rows}"
                 for name, length in lengths.items() if length != n_rows]
    if problems:  # rows cannot be matched up: nothing more can be checked
        return problems
    if not table.done:
        problems.append(f"{path} holds no codes (left by an extraction that failed before its first batch); "
                        f"delete it and run extract again")
    labels = np.asarray(table.labels)
    if len(labels) and (labels.min() < -1 or labels.max() >= len(table.classes)):
        problems.append(f"/samples/label has values outside -1..{len(table.classes) - 1}")
    with h5py.File(path) as file:
        for (tap, pooling), done in table.done.items():
            expected_dtype = np.dtype(_dtype_of({"dtype": "float32", **file.attrs}, pooling))
            name = _dataset_name(tap, pooling)
            dataset = file["features"][name]
            if dataset.shape[0] != n_rows or len(done) != n_rows:
                problems.append(f"/features/{name} has {dataset.shape[0]} rows and {len(done)} done "
                                f"markers for {n_rows} samples")
                continue
            if dataset.dtype != expected_dtype:
                problems.append(f"/features/{name} is {dataset.dtype}, the file says {expected_dtype}")
            missing = int((~done[table.in_use()]).sum())
            if missing:
                problems.append(f"/features/{name}: {missing} of {int(table.in_use().sum())} rows in use "
                                f"are not written (run extract to finish them)")
            if bool(dataset.attrs.get("complete")) != (missing == 0):
                problems.append(f"/features/{name}: attribute complete disagrees with the done markers")
            problems += _check_codes(file, name, done)
        unchecked = [name for name in (_dataset_name(*key) for key in table.done)
                     if not checksums.has_checksums(file, name)]
    if unchecked:
        log.warning("%s carries no checksums for %s (written before they existed): changed codes cannot be "
                    "detected there; delete the file and run extract again to add them", path, ", ".join(unchecked))
    return problems


def _check_codes(file: h5py.File, name: str, done: np.ndarray) -> list[str]:
    """The blocks of codes dataset ``name`` that fail their checksum, and its written rows that
    hold NaN or infinite values, in one read, a block at a time."""
    dataset = file["features"][name]
    sums = checksums.Checksums(file, name) if checksums.has_checksums(file, name) else None
    step = sums.block_rows if sums else checksums.rows_per_block(dataset)
    damaged, bad = [], 0
    for start in range(0, dataset.shape[0], step):
        block = dataset[start : start + step]
        if sums and not sums.matches(start, block):
            damaged.append(f"{start}-{start + len(block) - 1}")
        written = block[done[start : start + step]]
        bad += int((~np.isfinite(written.reshape(len(written), -1))).any(axis=1).sum())
    problems = []
    if damaged:
        problems.append(f"/features/{name} fails its checksum in rows {', '.join(damaged[:5])}"
                        f"{f' ({len(damaged)} blocks in all)' if len(damaged) > 5 else ''}: its codes changed after "
                        f"they were written; delete the file and run extract again")
    if bad:
        problems.append(f"/features/{name}: {bad} written rows hold NaN or infinite values")
    return problems
