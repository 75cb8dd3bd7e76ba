"""Content checksums of codes datasets: one CRC-32 per block of rows.

A codes dataset whose numbers change after they were written (a disk fault, a tool that
edits the file and keeps its modification time) must not be fitted as if it were sound.
Each codes dataset ``/features/<tap>/<pooling>`` has a companion ``/checksums/<tap>/<pooling>``:
``(n_blocks,) uint32``, the CRC-32 of the stored bytes of each block of ``block_rows``
rows (an attribute; the dataset's chunk, so a reader that reads whole chunks checks them
at no extra read). A writer recomputes only the blocks it changed (``Rewrite``), so an
extended or resumed store is checked as cheaply as a new one, and a block damaged before
the rewrite keeps failing. CRC-32 catches accidental change, not a deliberate forgery.

Stores written before checksums existed have none: they are read as before, and said to
carry none (``has_checksums``).
"""

from __future__ import annotations

import zlib

import h5py
import numpy as np

__all__ = ["CHUNK_BYTES", "GROUP", "Checksums", "Rewrite", "has_checksums", "rows_per_block"]

GROUP = "checksums"
CHUNK_BYTES = 1 << 20
"""About 1 MiB of rows per chunk of a codes dataset (reads of a split touch few chunks), and per
block of a virtual one (joined shards), which has no chunks."""


def rows_per_block(dataset: h5py.Dataset) -> int:
    """Rows in a chunk of ``dataset``: the block read at once and checked as one."""
    if dataset.chunks:
        return dataset.chunks[0]
    return max(1, CHUNK_BYTES // (int(np.prod(dataset.shape[1:])) * dataset.dtype.itemsize))


def _crc(block: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(block))


def has_checksums(file: h5py.File, name: str) -> bool:
    """Whether codes dataset ``features/<name>`` has checksums (stores before them have none)."""
    return name in file.get(GROUP, {})


class Rewrite:
    """The checksums of one codes dataset through one rewrite of the store: the blocks it
    changes are recomputed at the end (``finish``), every block when the dataset had none.

    A block is checked before its first change (``changing``): one that was damaged
    before the rewrite keeps failing afterwards, instead of being blessed with a new
    checksum. Only the blocks changed are read.
    """

    def __init__(self, file: h5py.File, name: str):
        self.file, self.name = file, name
        self.dataset = file["features"][name]
        self.old_rows = self.dataset.shape[0]
        self.sums = Checksums(file, name) if has_checksums(file, name) else None
        self.step = self.sums.block_rows if self.sums else rows_per_block(self.dataset)
        self.changed, self.damaged = set(), set()

    def changing(self, rows=(), from_row: int | None = None) -> None:
        """Call before writing ``rows``, or before adding rows from ``from_row`` on."""
        blocks = set((np.asarray(rows, dtype=np.int64) // self.step).tolist())
        if from_row is not None:
            blocks.add(from_row // self.step)
        for block in sorted(blocks - self.changed):
            start = block * self.step
            if self.sums and start < self.old_rows and not self.sums.matches(
                    start, self.dataset[start:min(start + self.step, self.old_rows)]):
                self.damaged.add(block)
        self.changed |= blocks

    def finish(self) -> None:
        """Write the checksums of the blocks changed (of all, for a dataset that had none)."""
        n_blocks = -(-self.dataset.shape[0] // self.step)
        if self.sums:
            sums = self.file[GROUP][self.name]
            sums.resize((n_blocks,))
            blocks = {block for block in self.changed if block < n_blocks}
            blocks |= set(range(len(self.sums.values), n_blocks))
        else:
            sums = self.file.require_group(GROUP).create_dataset(self.name, shape=(n_blocks,), dtype=np.uint32,
                                                                 maxshape=(None,))
            sums.attrs.update({"block_rows": self.step, "algorithm": "crc32"})
            blocks = range(n_blocks)
        for block in sorted(blocks):
            value = _crc(self.dataset[block * self.step:(block + 1) * self.step])
            sums[block] = value ^ 1 if block in self.damaged else value  # damaged before: it keeps failing


class Checksums:
    """The checksums of one codes dataset, loaded once, for checking blocks as they are read."""

    def __init__(self, file: h5py.File, name: str):
        sums = file[GROUP][name]
        self.block_rows = int(sums.attrs["block_rows"])
        self.values = sums[()]

    def matches(self, start: int, block: np.ndarray) -> bool:
        """Whether the block of rows read from row ``start`` (a multiple of ``block_rows``) is unchanged."""
        index = start // self.block_rows
        return index < len(self.values) and _crc(block) == int(self.values[index])

    def damaged(self, dataset: h5py.Dataset) -> list[tuple[int, int]]:
        """``[(first row, last row)]`` of every block of ``dataset`` that fails its checksum (reads it all)."""
        step, n_rows = self.block_rows, dataset.shape[0]
        return [(start, min(start + step, n_rows) - 1) for start in range(0, n_rows, step)
                if not self.matches(start, dataset[start:start + step])]
