"""The extraction journal: one small file per finished batch, beside the store.

HDF5 has no journal of its own: a process killed while it writes can leave a file that
no longer opens. So extraction never writes the store while the CNN runs. Each batch's
codes go to ``<store>.parts/<run>-<batch>.npz``, written under a temporary name and
renamed, so a part exists whole or not at all. At the end of a run (or when it fails)
the parts are folded into a new copy of the store (``store.rewrite_store``). A run killed
at any moment leaves the old store intact plus the parts of its finished batches, from
which the next run resumes.
"""

from __future__ import annotations

import logging
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import write_error

__all__ = ["Journal", "Part"]

log = logging.getLogger(__name__)


@dataclass
class Part:
    """One batch: the rows computed, their codes per ``(tap, pooling)``, the rows skipped."""

    ids: list[str]
    fingerprints: list[str]
    codes: dict
    skipped: dict  # id -> (fingerprint, reason)


class Journal:
    """The parts folder of the store at ``store_path``."""

    def __init__(self, store_path: str | Path):
        store_path = Path(store_path)
        self.folder = store_path.with_name(store_path.name + ".parts")
        self._run = uuid.uuid4().hex[:12]
        self._count = 0

    def write(self, part: Part) -> None:
        """Add a part atomically (temporary name, then rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{self._run}-{self._count:06d}"
        self._count += 1
        arrays = {
            "ids": np.array(part.ids, dtype=str),
            "fingerprints": np.array(part.fingerprints, dtype=str),
            "datasets": np.array([f"{tap}\t{pooling}" for tap, pooling in part.codes], dtype=str),
            "skipped": np.array([[id_, *info] for id_, info in part.skipped.items()], dtype=str).reshape(-1, 3),
        }
        arrays.update({f"codes{index}": codes for index, codes in enumerate(part.codes.values())})
        temporary = self.folder / f"{name}.tmp"
        try:
            with open(temporary, "wb") as file:  # a file object: numpy adds no .npz to the name
                np.savez(file, **arrays)
            temporary.replace(self.folder / f"{name}.npz")
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise write_error(temporary.with_suffix(".npz"), error) from error

    def has_parts(self) -> bool:
        return self.folder.is_dir() and any(self.folder.glob("*.npz"))

    def parts(self):
        """The parts written so far, oldest first (by modification time, then name)."""
        if not self.folder.is_dir():
            return
        files = sorted(self.folder.glob("*.npz"), key=lambda path: (path.stat().st_mtime_ns, path.name))
        for path in files:
            try:
                with np.load(path, allow_pickle=False) as arrays:
                    datasets = [tuple(name.split("\t")) for name in arrays["datasets"]]
                    yield Part(
                        list(arrays["ids"]),
                        list(arrays["fingerprints"]),
                        {key: arrays[f"codes{index}"] for index, key in enumerate(datasets)},
                        {row[0]: (row[1], row[2]) for row in arrays["skipped"]},
                    )
            except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
                log.warning("ignoring unreadable extraction part %s: %s", path, error)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def holding(self) -> str:
        """What the journal holds, for messages: ``"3 finished batches (1.2 MB) in <folder>"``."""
        parts = list(self.folder.glob("*.npz")) if self.folder.is_dir() else []
        size = sum(part.stat().st_size for part in parts)
        return f"{len(parts)} finished batches ({size / 1e6:.1f} MB) in {self.folder}"
