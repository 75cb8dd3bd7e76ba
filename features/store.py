"""The feature store: CNN codes of one image source and one backbone in one HDF5 file.

Layout (plain h5py reads it; see the README)::

    /                        attrs: format_version, backbone, weights, preprocessing, ...
    /samples/id              (n_samples,) utf-8   relative path or array index
    /samples/label           (n_samples,) int64   index into /classes
    /samples/split           (n_samples,) utf-8   train / val / test
    /classes                 (n_classes,) utf-8
    /features/<tap>/<pool>   (n_samples, n_features) float32, chunked by rows;
                             attrs: complete (bool), tap, pooling

A codes dataset counts only once its ``complete`` attribute is true, so a run killed
half-way leaves a dataset that readers ignore and the next extraction rewrites.
This module is the only reader of the files: ``classifiers`` goes through it.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

__all__ = ["FORMAT_VERSION", "FeatureStore", "StoreError", "read_codes"]

FORMAT_VERSION = 1
_TEXT = h5py.string_dtype("utf-8")
_CHUNK_BYTES = 1 << 20  # about 1 MiB of rows per chunk: reads of a split touch few chunks


class StoreError(OSError):
    """A feature store file is missing, unreadable or lacks the codes asked for."""


class FeatureStore:
    """An open feature store file.

    Parameters
    ----------
    path : str or Path
    mode : {"r", "r+"}
        ``r`` to read codes, ``r+`` to add codes to an existing file.
    """

    def __init__(self, path: str | Path, mode: str = "r"):
        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, mode)
            self.attrs = dict(self._file.attrs)
            self.classes = [name.decode() for name in self._file["classes"][()]]
            samples = self._file["samples"]
            self.ids = [name.decode() for name in samples["id"][()]]
            self.labels = samples["label"][()]
            self.splits = np.array([name.decode() for name in samples["split"][()]])
        except (OSError, KeyError) as error:
            if hasattr(self, "_file"):
                self._file.close()
            raise StoreError(
                f"cannot read feature store {self.path}: {error}; delete the file and run "
                f"extract again"
            ) from error

    @classmethod
    def create(cls, path, ids, labels, splits, classes, attrs: dict) -> "FeatureStore":
        """Write a new file with the sample table and provenance attributes, open for writing.

        The file is written under a temporary name and renamed, so a file with this name
        always has a whole sample table.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with h5py.File(partial, "w") as file:
            file.attrs.update({"format_version": FORMAT_VERSION, **attrs})
            file.create_dataset("classes", data=list(classes), dtype=_TEXT)
            file.create_dataset("samples/id", data=list(ids), dtype=_TEXT)
            file.create_dataset("samples/label", data=np.asarray(labels, dtype=np.int64))
            file.create_dataset("samples/split", data=list(splits), dtype=_TEXT)
            file.create_group("features")
        partial.replace(path)
        return cls(path, mode="r+")

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def _key(tap: str, pooling: str) -> str:
        return f"features/{tap}/{pooling}"

    def available(self) -> list[tuple[str, str]]:
        """The complete ``(tap, pooling)`` datasets, in file order."""
        found = []

        def collect(name, item):
            if isinstance(item, h5py.Dataset) and item.attrs.get("complete", False):
                found.append((item.attrs["tap"], item.attrs["pooling"]))

        self._file["features"].visititems(collect)
        return found

    def has(self, tap: str, pooling: str) -> bool:
        return (tap, pooling) in self.available()

    def begin(self, tap: str, pooling: str, n_features: int, dtype=np.float32) -> None:
        """Create (or recreate, if an earlier run left it unfinished) an empty codes dataset."""
        key = self._key(tap, pooling)
        if key in self._file:
            del self._file[key]
        rows_per_chunk = max(1, min(len(self), _CHUNK_BYTES // (n_features * np.dtype(dtype).itemsize)))
        dataset = self._file.create_dataset(
            key, shape=(len(self), n_features), dtype=dtype, chunks=(rows_per_chunk, n_features)
        )
        dataset.attrs.update({"tap": tap, "pooling": pooling, "complete": False})

    def write(self, tap: str, pooling: str, start: int, rows: np.ndarray) -> None:
        """Write ``rows`` ``(batch, n_features)`` at sample positions ``start:start+batch``."""
        self._file[self._key(tap, pooling)][start : start + len(rows)] = rows

    def finish(self, tap: str, pooling: str) -> None:
        """Mark a codes dataset complete; only then do readers see it."""
        self._file[self._key(tap, pooling)].attrs["complete"] = True
        self._file.flush()

    def codes(self, tap: str, pooling: str, split: str | None = None):
        """The codes of one tap and pooling, for one split or all samples.

        Returns
        -------
        X : ndarray, (n_rows, n_features) float32
        y : ndarray, (n_rows,) int64
            Label indices into ``classes``.
        """
        if not self.has(tap, pooling):
            have = ", ".join(f"{t}/{p}" for t, p in self.available()) or "none"
            raise StoreError(
                f"{self.path} has no complete codes for tap {tap!r} with pooling {pooling!r} "
                f"(it has: {have}); run extract with that tap and pooling"
            )
        codes = self._file[self._key(tap, pooling)][()]
        if split is None:
            return codes, self.labels
        rows = self.splits == split
        return codes[rows], self.labels[rows]


def read_codes(path: str | Path, tap: str, pooling: str, split: str | None = None):
    """``(X, y)`` of one tap and pooling from the store at ``path``, for one split or all rows.

    The reader API for code outside ``features``: it opens the file, reads the one codes
    dataset asked for and closes the file again.
    """
    with FeatureStore(path) as store:
        return store.codes(tap, pooling, split)
