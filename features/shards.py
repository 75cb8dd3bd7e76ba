"""Extraction on several processes (``torchrun``): one shard store per rank, joined without copying.

Under ``torchrun --nproc-per-node N [--nnodes M ...] -m pipeline extract -c CONFIG`` each
rank takes every N-th image of the source (``Shard``) and extracts it into a store of its
own, with the usual machinery: its own lock, journal and resume, so a crashed rank resumes
on its own. When every rank is done, rank 0 writes the source's store as HDF5 *virtual
datasets* over the shards (``join_shards``): no codes are copied, and readers (h5py, this
package) see one ordinary-looking file. The shards must stay beside it (their names are
stored relative to it), and a later single-process extraction that changes the store
turns the virtual datasets into ordinary ones first (``store.rewrite_store``).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from . import checksums
from .files import write_atomic
from .sources import ImageSource
from .store import SampleTable, read_table, write_done, write_samples

__all__ = ["Shard", "distributed_rank", "join_shards"]


def distributed_rank() -> tuple[int, int]:
    """``(rank, world size)`` of this process as ``torchrun`` sets them; ``(0, 1)`` alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class Shard(ImageSource):
    """Every ``world``-th sample of ``source``, from ``rank`` on: what one process extracts.

    Its identity (and so its store's name) says which shard it is; ids, labels, splits and
    groups are the source's.
    """

    def __init__(self, source: ImageSource, rank: int, world: int):
        self.source, self.rank, self.world = source, rank, world
        self.indices = np.arange(rank, len(source), world)
        self.ids = [source.ids[index] for index in self.indices]
        self.labels = np.asarray(source.labels)[self.indices]
        self.splits = np.asarray(source.splits)[self.indices]
        self.classes = source.classes
        self.name = f"{source.name}.rank{rank}of{world}"
        self.identity = f"{source.identity}#rank{rank}of{world}"

    @property
    def groups(self) -> list[str]:
        groups = self.source.groups
        return [groups[index] for index in self.indices]

    @cached_property
    def row_fingerprints(self) -> list[str]:
        fingerprints = self.source.row_fingerprints
        return [fingerprints[index] for index in self.indices]

    def load(self, index: int, min_side: int | None = None) -> Image.Image:
        return self.source.load(int(self.indices[index]), min_side)

    def encoded_jpeg(self, index: int) -> bytes | None:
        return self.source.encoded_jpeg(int(self.indices[index]))


def join_shards(path: str | Path, shards: list[Path], attrs: dict) -> None:
    """Write the store at ``path`` whose rows are the shards' rows, rank after rank, and whose
    codes datasets are virtual datasets over the shards' (only codes every shard has).

    ``attrs`` are the file attributes (those of a single-process store of the source).
    """
    path = Path(path)
    tables = [read_table(shard) for shard in shards]
    keys = sorted(set.intersection(*(set(table.done) for table in tables)))
    joined = SampleTable(
        ids=[value for table in tables for value in table.ids],
        fingerprints=[value for table in tables for value in table.fingerprints],
        labels=np.concatenate([table.labels for table in tables]),
        splits=np.concatenate([table.splits for table in tables]),
        skipped=[value for table in tables for value in table.skipped],
        classes=tables[0].classes,
        done={key: np.concatenate([table.done[key] for table in tables]) for key in keys},
        groups=[value for table in tables for value in table.groups or table.ids],
    )
    write_atomic(path, lambda partial: _write_joined(partial, shards, tables, joined, keys, attrs))


def _write_joined(partial: Path, shards: list[Path], tables: list, joined: SampleTable, keys, attrs: dict) -> None:
    """The joined store: the shards' sample tables end to end, and virtual datasets over their codes."""
    with h5py.File(partial, "w") as file:
        with h5py.File(shards[0]) as first:
            file.attrs.update({**dict(first.attrs), **attrs})
            samples = [first["features"][tap][pooling] for tap, pooling in keys]
            shapes = {key: (sample.shape[1:], sample.dtype) for key, sample in zip(keys, samples)}
        write_samples(file, joined)
        for (tap, pooling), (row, dtype) in shapes.items():  # the shards are closed: the virtual datasets read them
            name = f"{tap}/{pooling}"
            layout = h5py.VirtualLayout(shape=(len(joined.ids), *row), dtype=dtype)
            offset = 0
            for shard, table in zip(shards, tables):
                rows = len(table.ids)
                layout[offset:offset + rows] = h5py.VirtualSource(shard.name, f"features/{name}", shape=(rows, *row))
                offset += rows
            file.create_virtual_dataset(f"features/{name}", layout, fillvalue=np.nan).attrs.update(
                {"tap": tap, "pooling": pooling})
            checksums.Rewrite(file, name).finish()
        write_done(file, joined)
