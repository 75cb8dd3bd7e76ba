"""Extraction: an image source through a frozen backbone into the feature store.

All requested taps come from one forward pass; each tap is pooled on the device before
the copy to the host, so only ``(batch, features)`` rows cross to the CPU.

The store file is named by the ``Recipe`` of the codes (what changes the numbers) and
where the images come from, not by the list of images. Each row remembers the fingerprint (size, modification time) of the
image it was computed from, and each codes dataset which rows are done, so one path
serves every case: a second run finds everything done and runs no CNN; a new tap or
pooling computes only itself; new images add rows; a changed image is recomputed; a
killed run resumes from the journal of finished batches (``features.journal``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, fields, replace
from functools import partial
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .backbones import check_taps, get_backbone, list_taps
from .datasets import open_source
from .files import WriteError
from .forward import Forward, HostPixels, fold_batchnorm
from .images import ImageError
from .journal import Journal, Part
from .lifetime import end_with_parent
from .locks import WriterLock
from .names import ON_ERROR
from .pooling import MAP, pool
from .quantize import CALIBRATION_BATCH, INT8, calibration_sample, int8_model, sample_fingerprint
from .recipe import Recipe, Runtime
from .shards import Shard, join_shards
from .sources import ImageSource, Split
from .store import FeatureStore, SampleTable, read_table, rewrite_store
from .views import VIEW_AREA, AugmentedViews
from .weights import build_tap_extractor

__all__ = ["Extraction", "extract", "extraction_source", "extract_backbone", "compute_codes", "extract_codes",
           "forward_seconds", "join_shard_stores"]

log = logging.getLogger(__name__)


class _Batch(NamedTuple):
    """What the workers hand over: uint8 crops, JPEG files' bytes to decode on the device, failed reads."""

    order: list[int]  # every index of the batch, in the order asked for
    indices: list[int]  # of the crops
    pixels: torch.Tensor | None  # (len(indices), 3, crop, crop) uint8
    encoded_indices: list[int]
    encoded: list[torch.Tensor]  # 1-D uint8: a JPEG file's bytes
    failed: list[tuple[int, str]]  # (index, error message)


class _Preprocessed(Dataset):
    """The source's images at ``indices`` as uint8 crops (``HostPixels``), or, with
    ``encoded``, a JPEG file's bytes for the device to decode; a failed read is returned,
    not raised."""

    def __init__(self, source: ImageSource, pixels: HostPixels, indices, fast_decode: bool, encoded: bool = False):
        self.source = source
        self.pixels = pixels
        self.indices = indices
        self.min_side = pixels.resize_size[0] if fast_decode else None
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index = int(self.indices[position])
        data = self.source.encoded_jpeg(index) if self.encoded else None
        if data is not None:
            return "encoded", index, torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return self.crop(index)

    def crop(self, index: int):
        """``("pixels", index, uint8 crop)``, or ``("failed", index, message)``."""
        try:
            return "pixels", index, self.pixels(self.source.load(index, self.min_side))
        except OSError as error:  # ImageError and friends: the loop decides to skip or stop
            return "failed", index, str(error)


def _collate(items) -> _Batch:
    of = {kind: [(index, value) for what, index, value in items if what == kind]
          for kind in ("pixels", "encoded", "failed")}
    return _Batch(
        [index for _, index, _ in items],
        [index for index, _ in of["pixels"]],
        torch.stack([crop for _, crop in of["pixels"]]) if of["pixels"] else None,
        [index for index, _ in of["encoded"]],
        [data for _, data in of["encoded"]],
        of["failed"],
    )


def _on_device(batch: _Batch, dataset: _Preprocessed, forward: Forward, transform):
    """``(uint8 crops on the device or None, their indices, failed reads)`` of a batch, in the
    batch's order: the workers' crops and the JPEGs decoded on the device; a file the
    device's decoder refuses is read on the host here instead (a corrupt one fails there,
    by name)."""
    pixels = None if batch.pixels is None else batch.pixels.to(forward.device, non_blocking=True)
    if not batch.encoded:
        return pixels, batch.indices, batch.failed
    crops = dict(zip(batch.indices, [] if pixels is None else pixels))
    failed = list(batch.failed)
    for index, crop in zip(batch.encoded_indices, forward.decode_jpegs(batch.encoded, transform)):
        if crop is None:
            kind, _, crop = dataset.crop(index)
            if kind == "failed":
                failed.append((index, crop))
                continue
        crops[index] = crop.to(forward.device)
    done = [index for index in batch.order if index in crops]
    return (torch.stack([crops[index] for index in done]) if done else None), done, failed


def _tables(recipe: Recipe, taps: list[str], poolings: list[str]) -> list[tuple[str, str]]:
    """The tables of codes asked for, every (tap, pooling), after checking, before any CNN work, the names (errors
    list the valid ones), that each tap has a layout its poolings can read, and that the
    model takes the recipe's image size (``check_taps``)."""
    check_taps(recipe.backbone, taps, poolings, recipe.image_size)
    return [(tap, pooling) for tap in taps for pooling in poolings]


def _pooled(activation: torch.Tensor, pooling: str, layout, dtype: str) -> np.ndarray:
    """One tap's rows, pooled in float32 on the device (also after a bfloat16 forward) along
    the axes of its layout, C-ordered."""
    return pool(activation.float(), pooling, layout).to(getattr(torch, dtype)).contiguous().cpu().numpy()


def auto_workers(device: str) -> int:
    """DataLoader processes for ``num_workers = "auto"``: enough to decode at any speed the CNN needs.

    A worker decodes only while its prefetched batches (2) are not all taken, so spare
    workers wait rather than compete with the forward; when decoding is the bottleneck
    (camera photos, small inputs) every core helps. On a GPU one core stays free to drive
    it. Capped at 16: more rarely help and each is a process of its own. On 2 CPU cores
    with 12-megapixel JPEGs at 224x224 (ResNet50), 2 workers ran at 112 % and 1 worker at
    105 % of the bare forward (medians of 3 interleaved rounds; the machine drifts 30 %).
    Under ``torchrun`` the processes of one machine (``LOCAL_WORLD_SIZE``) share its cores.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cores //= int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return max(1, min(cores - 1 if device.startswith("cuda") else cores, 16))


def _device_batches(source: ImageSource, indices, recipe: Recipe, runtime: Runtime, forward: Forward,
                    batch_size: int):
    """``(uint8 crops on the device or None, their indices, failed reads)`` of ``source[indices]``,
    batch by batch, in order, read by the runtime's DataLoader workers."""
    dataset = _Preprocessed(source, HostPixels(recipe.transform), indices, recipe.fast_decode,
                            forward.decode_on_device)
    workers = runtime.num_workers
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=auto_workers(forward.device) if workers == "auto" else workers,
        collate_fn=_collate,
        pin_memory=forward.on_cuda,
        worker_init_fn=partial(end_with_parent, os.getpid()),  # they end within a second of a killed run, not five
    )
    for batch in loader:
        yield _on_device(batch, dataset, forward, recipe.transform)


def with_calibration_sample(recipe: Recipe, source: ImageSource) -> tuple[Recipe, np.ndarray | None]:
    """``(recipe, sample)``: for ``int8``, the recipe with the fingerprint of its calibration
    sample of ``source``'s training images, and the sample's indices; else as given and None."""
    if recipe.precision != INT8:
        return recipe, None
    sample = calibration_sample(source.labels, source.splits, recipe.calibration_images, recipe.calibration_seed)
    if not len(sample):
        raise ValueError(f"features.precision = \"int8\" calibrates on training images, and {source.name} has "
                         f"none in the train split; use precision = \"float32\" or \"bfloat16\"")
    fingerprints = source.row_fingerprints
    fingerprint = sample_fingerprint([source.ids[index] for index in sample], [fingerprints[index] for index in sample])
    return replace(recipe, calibration_sample=fingerprint), sample


def _extractor(source: ImageSource, recipe: Recipe, taps: list[str], runtime: Runtime, forward: Forward,
               cache_dir=None, sample: np.ndarray | None = None):
    """The tap extractor that runs ``recipe``'s forward: float (``Forward.model``), or int8,
    calibrated on ``source[sample]`` unless ``cache_dir`` keeps the ranges already."""
    network = build_tap_extractor(recipe.weights, taps, recipe.image_size)
    if recipe.precision != INT8:
        return forward.model(network, runtime.batch_size)
    if cache_dir is None:
        raise ValueError("int8 codes need the cache folder that keeps their calibration (cache_dir)")

    def calibration_inputs():
        for pixels, _, _ in _device_batches(source, sample, recipe, runtime, forward, CALIBRATION_BATCH):
            if pixels is not None:
                yield forward.inputs(pixels, recipe.transform)

    return int8_model(fold_batchnorm(network), recipe.calibration_file(cache_dir), recipe.image_size,
                      runtime.batch_size, None if sample is None else calibration_inputs)


def _batches(source: ImageSource, indices, recipe: Recipe, tables, runtime: Runtime, cache_dir=None,
             sample: np.ndarray | None = None):
    """Run the CNN over ``source[indices]`` in order, one batch at a time.

    Yields ``(indices, codes, failed)`` per batch: the source indices computed, ``{(tap,
    pooling): (len(indices), n_features) ndarray}`` (``(len(indices), C, H, W)`` maps or
    ``(len(indices), T, D)`` tokens in ``map_dtype`` for pooling ``none``), and ``[(index,
    error message)]`` of the images that could not be read. ``cache_dir`` and ``sample``:
    int8's calibration (``_extractor``).
    """
    forward = runtime.forward(recipe)
    taps = sorted({tap for tap, _ in tables})
    layouts = check_taps(recipe.backbone, taps, [], recipe.image_size)
    extractor = _extractor(source, recipe, taps, runtime, forward, cache_dir, sample)
    transform = recipe.transform
    bar = tqdm(total=len(indices), desc=f"extract {recipe.backbone}", unit="img",
               disable=None if runtime.progress else True)
    with bar, forward.running():
        for pixels, done, failed in _device_batches(source, indices, recipe, runtime, forward, runtime.batch_size):
            codes = {}
            if pixels is not None:
                try:
                    outputs = extractor(forward.inputs(pixels, transform))
                except RuntimeError as error:  # e.g. inputs too small for the model, or out of memory
                    raise ValueError(f"{recipe.backbone} failed on a batch of {len(pixels)} images of "
                                     f"{recipe.image_size} x {recipe.image_size}: {str(error).splitlines()[0]}"
                                     ) from error
                codes = {(tap, pooling): _pooled(outputs[tap], pooling, layouts[tap],
                                                 recipe.map_dtype if pooling == MAP else recipe.dtype)
                         for tap, pooling in tables}
            yield done, codes, failed
            bar.update(len(done) + len(failed))


def forward_seconds(recipe: Recipe, taps: list[str], *, runtime: Runtime = Runtime(), repeats: int = 3) -> float:
    """Seconds per image of the backbone's forward pass up to ``taps``, timed on random input
    (a batch of ``runtime.batch_size``).

    What recomputing those frozen layers costs: a fine-tuning report multiplies it by
    epochs and rows to show how much training on cached maps saved.
    """
    forward = runtime.forward(recipe)
    extractor = forward.model(build_tap_extractor(recipe.weights, taps, recipe.image_size), runtime.batch_size)
    size = recipe.image_size
    pixels = torch.randint(0, 256, (runtime.batch_size, 3, size, size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    transform = recipe.transform
    synchronize = torch.cuda.synchronize if forward.on_cuda else lambda: None
    with forward.running():
        extractor(forward.inputs(pixels, transform))  # warm-up: allocations, cuDNN's choice of kernels
        synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            extractor(forward.inputs(pixels, transform))
        synchronize()
    return (time.perf_counter() - started) / (repeats * runtime.batch_size)


def compute_codes(source: ImageSource, recipe: Recipe, *, taps: list[str], poolings: list[str], cache_dir=None,
                  runtime: Runtime = Runtime()):
    """The codes of ``source``'s images in memory, without any store (for prediction).

    An ``int8`` recipe reads its calibration from ``cache_dir`` (kept there by the
    extraction of the training images: ``recipe.calibration_sample`` names it).

    Returns
    -------
    codes : dict of (tap, pooling) to ndarray, (n_read, n_features) float32
        One row per image that could be read, in the source's order. Maps (pooling
        ``none``) are ``(n_read, C, H, W)`` (channels first, whatever the network's
        layout) and tokens ``(n_read, T, D)``, in ``map_dtype``: the numbers a store holds.
    failed : list of (id, message)
        The images that could not be read (left out of ``codes``).
    """
    tables = _tables(recipe, taps, poolings)
    blocks = {key: [] for key in tables}
    failed = []
    for _, codes, bad in _batches(source, np.arange(len(source)), recipe, tables, runtime, cache_dir):
        for key, rows in codes.items():
            blocks[key].append(rows)
        failed += [(source.ids[index], message) for index, message in bad]
    return {key: np.concatenate(rows) if rows else np.empty((0, 0), np.float32) for key, rows in blocks.items()}, failed


@dataclass
class Extraction:
    """What an extraction did.

    Attributes
    ----------
    path : Path
        The store.
    computed, cached : list of (tap, pooling)
        Codes datasets that needed CNN work in this run, and those that were all there.
    images : int
        Images run through the CNN in this run (``computed_rows`` are their ids).
    skipped : list of (id, reason)
        Images of the source that could not be read (in this run or an earlier one).
    """

    path: Path
    recipe: Recipe
    computed: list[tuple[str, str]] = field(default_factory=list)
    cached: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    images: int = 0
    computed_rows: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _plan(source: ImageSource, old: SampleTable | None) -> tuple[SampleTable, np.ndarray]:
    """The store's rows after this run, and the row of each source image.

    Known ids keep their rows; a changed fingerprint clears the row's done markers; new
    ids are appended. Labels and splits are the source's; rows of images that left the
    source keep their codes but get label -1 and an empty split.
    """
    old = old or SampleTable([], [], np.empty(0, np.int64), np.empty(0, object), [], [])
    ids, fingerprints, skipped = list(old.ids), list(old.fingerprints), list(old.skipped)
    groups = list(old.groups or old.ids)
    row_of = {sample_id: row for row, sample_id in enumerate(ids)}
    positions, changed = [], []
    for sample_id, fingerprint, group in zip(source.ids, source.row_fingerprints, source.groups):
        row = row_of.get(sample_id)
        if row is None:
            row = row_of[sample_id] = len(ids)
            ids.append(sample_id)
            fingerprints.append(fingerprint)
            skipped.append("")
            groups.append(group)
        elif fingerprints[row] != fingerprint:
            fingerprints[row], skipped[row] = fingerprint, ""
            changed.append(row)
        positions.append(row)
    positions = np.array(positions, dtype=np.int64)
    labels = np.full(len(ids), -1, dtype=np.int64)
    labels[positions] = source.labels
    splits = np.full(len(ids), "", dtype=object)
    splits[positions] = source.splits
    done = {}
    for key, markers in old.done.items():
        done[key] = np.concatenate([markers, np.zeros(len(ids) - len(markers), bool)])
        done[key][changed] = False
    return SampleTable(ids, fingerprints, labels, splits, skipped, list(source.classes), done, groups), positions


def _journal_rows(part: Part, table: SampleTable, row_of: dict):
    """``(rows, positions in the part)`` of a part's computed rows that still match the table."""
    pairs = [(row_of[sample_id], index) for index, (sample_id, fingerprint)
             in enumerate(zip(part.ids, part.fingerprints))
             if sample_id in row_of and table.fingerprints[row_of[sample_id]] == fingerprint]
    rows, indices = zip(*pairs) if pairs else ((), ())
    return np.array(rows, dtype=np.int64), np.array(indices, dtype=np.int64)


def _replay(journal: Journal, table: SampleTable, wanted) -> dict:
    """Done markers from the journal of an interrupted run, and its skipped images into ``table``."""
    row_of = {sample_id: row for row, sample_id in enumerate(table.ids)}
    journaled = {key: np.zeros(len(table.ids), bool) for key in wanted}
    for part in journal.parts():
        rows, _ = _journal_rows(part, table, row_of)
        for key in part.codes:
            journaled.setdefault(key, np.zeros(len(table.ids), bool))[rows] = True
        for row in rows:
            table.skipped[row] = ""
        for sample_id, (fingerprint, reason) in part.skipped.items():
            if sample_id in row_of and table.fingerprints[row_of[sample_id]] == fingerprint:
                table.skipped[row_of[sample_id]] = reason
    return journaled


def _fold(journal: Journal, table: SampleTable):
    """``write_codes`` for ``rewrite_store``: the journal's codes for rows not done yet."""
    row_of = {sample_id: row for row, sample_id in enumerate(table.ids)}

    def write_codes(put) -> None:
        for part in journal.parts():
            rows, indices = _journal_rows(part, table, row_of)
            for key, codes in part.codes.items():
                fresh = ~table.done[key][rows] if key in table.done else np.ones(len(rows), bool)
                if fresh.any():
                    put(*key, rows[fresh], codes[indices[fresh]])

    return write_codes


def _same_rows(old: SampleTable | None, new: SampleTable) -> bool:
    return old is not None and all(
        list(getattr(old, name)) == list(getattr(new, name))
        for name in ("ids", "fingerprints", "labels", "splits", "skipped", "classes")
    )


def extract_codes(source: ImageSource, recipe: Recipe, *, taps: list[str], poolings: list[str], cache_dir,
                  runtime: Runtime = Runtime(), on_error: str = "skip") -> Extraction:
    """Compute the codes of ``taps`` x ``poolings`` that the store does not have yet.

    Parameters
    ----------
    source : ImageSource
    recipe : Recipe
        What decides the codes (weights, image size, decoding, storage types, precision);
        with ``source``, it names the store file in ``cache_dir``.
    taps : list of str
        Tap names of the backbone (``pool3``, ``layer3``, or graph node names).
    poolings : list of str
        ``avg``, ``max``, ``avgmax``, ``grid<k>``, ``cls``, ``cls+avg`` (token taps with a
        class token) or ``none`` (the whole output; ``features.pooling``).
    cache_dir : path
        Folder of the store files.
    runtime : Runtime
        Where and how the network runs (device, batch size, workers, ..., the map budget:
        a whole map over ``runtime.map_budget_gb`` is refused before any CNN work, and the
        size of every map is logged before it starts).
    on_error : {"skip", "fail"}
        An unreadable image is skipped (logged and recorded in the store), or stops the
        run with its name; either way every row computed before it is kept.

    Returns
    -------
    Extraction
    """
    wanted = _tables(recipe, taps, poolings)
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error = {on_error!r} is not valid; valid: {', '.join(ON_ERROR)}")
    recipe, sample = with_calibration_sample(recipe, source)
    path = recipe.store_path(cache_dir, source)
    started = time.perf_counter()
    with WriterLock(path):
        old = read_table(path)
        table, positions = _plan(source, old)
        journal = Journal(path)
        journaled = _replay(journal, table, wanted)
        retry = on_error == "fail"
        usable = np.array([retry or not table.skipped[row] for row in positions], dtype=bool)
        needs = {key: usable & ~(table.done.get(key, np.zeros(len(table.ids), bool)) | journaled[key])[positions]
                 for key in wanted}
        todo = np.flatnonzero(np.any(list(needs.values()), axis=0))
        result = Extraction(path, recipe, computed=[key for key in wanted if needs[key].any()],
                            cached=[key for key in wanted if not needs[key].any()])
        _check_map_sizes(recipe, result.computed, len(table.ids), runtime.map_budget_gb)
        job = _Job(source, table, positions, journal, result)
        try:
            if len(todo):
                _run(job, todo, runtime, on_error, cache_dir, sample)
        finally:  # also on failure: what was computed goes into the store (a store without codes is never made)
            if journal.has_parts() or old is not None and not _same_rows(old, table):
                attrs = _store_attrs(recipe, source)
                if old is None:
                    attrs["created"] = attrs["updated"]
                try:
                    rewrite_store(path, table, attrs, _fold(journal, table))
                except WriteError as error:  # the journal is the work done: it stays, and says so
                    raise WriteError(f"{error}; the extraction journal keeps {journal.holding()}: the next "
                                     f"extract resumes from it once there is space (delete it to free the space "
                                     f"instead)") from error
                journal.clear()
    result.skipped = [(table.ids[row], table.skipped[row]) for row in positions if table.skipped[row]]
    for _, reason in result.skipped:  # every run lists them, also those recorded by an earlier one
        log.warning("skipped (recorded in the store; fix or remove the file): %s", reason)
    result.seconds = time.perf_counter() - started
    return result


def _store_attrs(recipe: Recipe, source: ImageSource) -> dict:
    """The recipe's attributes, stamped: only computed when the store is written (they hash the weights' file)."""
    return {**recipe.store_attrs(source), "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _check_map_sizes(recipe: Recipe, tables, n_rows: int, budget_gb: float) -> None:
    """Log the size of each whole map to be written, and refuse one over the budget before any work."""
    maps = [tap for tap, pooling in tables if pooling == MAP]
    if not maps:
        return
    backbone, image_size, map_dtype = recipe.backbone, recipe.image_size, recipe.map_dtype
    shapes = {info.name: info.shape for info in list_taps(backbone, image_size, maps)}
    for tap in maps:
        row_bytes = int(np.prod(shapes[tap])) * np.dtype(map_dtype).itemsize
        size_gb = n_rows * row_bytes / 1e9
        log.info("extract: %s %s/%s map %s: %d rows x %.1f kB = %.2f GB (budget %.1f GB)", backbone, tap, MAP,
                 "x".join(map(str, shapes[tap])), n_rows, row_bytes / 1e3, size_gb, budget_gb)
        if size_gb > budget_gb:
            raise ValueError(
                f"the {tap} map of {backbone} at {image_size} x {image_size} would take {size_gb:.2f} GB "
                f"({n_rows} rows x {row_bytes / 1e3:.1f} kB of {map_dtype}), over the map budget of "
                f"{budget_gb:g} GB (features.map_budget_gb); raise the budget, or pick a deeper tap, a "
                f"smaller image_size or fewer views"
            )


def join_shard_stores(source: ImageSource, recipe: Recipe, *, cache_dir, world: int) -> Path:
    """The source's store, joined from the stores of ``Shard(source, rank, world)`` for every
    rank (each extracted by ``extract_codes``), as virtual datasets: no codes are copied.

    Run by one process once every shard is done (rank 0 under ``torchrun``).
    """
    path = recipe.store_path(cache_dir, source)
    shards = [recipe.store_path(cache_dir, Shard(source, rank, world)) for rank in range(world)]
    with WriterLock(path):
        join_shards(path, shards, _store_attrs(recipe, source))
    return path


@dataclass
class _Job:
    """An extraction's rows: the source, the store's table after it, the table row of each
    source image, the journal of finished batches, and the result so far."""

    source: ImageSource
    table: SampleTable
    positions: np.ndarray
    journal: Journal
    result: Extraction


def _run(job: _Job, todo, runtime: Runtime, on_error: str, cache_dir, sample) -> None:
    """The CNN over the source images at ``todo``, each batch journaled as it finishes
    (``cache_dir``, ``sample``: int8's calibration, ``_extractor``)."""
    source, table, positions, result = job.source, job.table, job.positions, job.result
    for done, codes, failed in _batches(source, todo, result.recipe, result.computed, runtime, cache_dir, sample):
        skipped = {source.ids[index]: (table.fingerprints[positions[index]], message) for index, message in failed}
        job.journal.write(Part([source.ids[index] for index in done],
                               [table.fingerprints[positions[index]] for index in done], codes, skipped))
        result.images += len(done)
        result.computed_rows += [source.ids[index] for index in done]
        for index, message in failed:
            table.skipped[positions[index]] = message
            if on_error == "fail":
                raise ImageError(
                    f"{message}; stopped (data.on_error = \"fail\"): the {result.images} images computed "
                    f"so far are kept; fix or remove the file, or set data.on_error = \"skip\""
                )


def extraction_source(source, *, split: Split = Split(), views: int = 0, seed: int = 0, view_area: float = VIEW_AREA,
                      cache_dir="cache", kind: str = "", root=None) -> ImageSource:
    """The rows an extraction runs over: ``source`` opened (``open_source``: ``kind``, ``split``,
    ``cache_dir`` and ``root``) and, with ``views``, that many augmented views of each training
    image (``AugmentedViews``, seeded by ``seed``, crops keeping ``view_area`` or more)."""
    source = open_source(source, kind=kind, split=split, cache_dir=cache_dir, root=root)
    return AugmentedViews(source, views=views, seed=seed, view_area=view_area) if views else source


def extract_backbone(source: ImageSource, backbone: str, *, taps: list[str] | None = None, poolings=("avg",),
                     cache_dir="cache", runtime: Runtime = Runtime(), on_error: str = "skip", **recipe) -> Extraction:
    """``backbone``'s codes of ``source`` (``extraction_source``) at ``taps`` (by default the
    backbone's own) x ``poolings``: the ``Recipe`` of the ``recipe`` settings (``weights`` and
    its ``seed`` too: ``Recipe.resolve``), run by ``runtime`` through ``extract_codes``. What
    both ``features.extract`` and the ``extract`` stage run."""
    recipe = Recipe.resolve(backbone, **recipe)
    return extract_codes(source, recipe, taps=list(taps or get_backbone(backbone).default_taps),
                         poolings=list(poolings), cache_dir=cache_dir, runtime=runtime, on_error=on_error)


_RECIPE_OPTIONS = tuple(field.name for field in fields(Recipe)
                        if field.name not in ("weights", "image_size", "calibration_sample"))
_RUNTIME_OPTIONS = tuple(field.name for field in fields(Runtime))
_SPLIT_OPTIONS = tuple(field.name for field in fields(Split))
_SOURCE_OPTIONS = ("seed", "views", "view_area", "on_error", *_SPLIT_OPTIONS)


def extract(source, backbone: str = "vgg16", taps: list[str] | None = None, pooling=("avg",), *,
            weights: str = "imagenet", image_size: int = 224, cache_dir="cache", **options) -> FeatureStore:
    """The codes of ``source``'s images at every tap and pooling, computed once and cached:
    the ``extract`` stage for a notebook, writing the same store files.

    Parameters
    ----------
    source : str, Path or ImageSource
        A folder (``<class>/<image>`` or ``<split>/<class>/<image>``), a manifest CSV, a
        named dataset, or any ``ImageSource`` such as ``ImageArrays`` (``open_source``).
    backbone : str
        A registered backbone (``vgg16``, ``resnet50``), any torchvision classifier name,
        or ``timm/<name>`` (the ``timm`` extra).
    taps : list of str, optional
        Where to take codes; by default the backbone's default taps.
    pooling : list of str
        ``avg``, ``max``, ``avgmax``, ``grid<k>``, ``cls``, ``cls+avg`` or ``none`` (whole
        outputs).
    weights : str
        ``imagenet``, ``auto``, ``random``, a torchvision weights name or a state-dict file.
    image_size : int
    cache_dir : path
        Folder of the store files (the config's ``features.cache_dir``).
    **options
        The other settings of ``[features]`` and ``[data]``, with the config file's names,
        defaults, meanings and checks: ``fast_decode``, ``dtype``, ``map_dtype``, ``precision``,
        ``decode_on_device``, ``calibration_images``, ``calibration_seed`` (the ``Recipe``); ``device`` (``auto``: the GPU when there is
        one), ``batch_size``, ``num_workers``, ``channels_last``, ``compile``,
        ``map_budget_gb``, ``progress`` (the ``Runtime``); ``test_size``, ``val_size``
        (the ``Split``, with ``seed``); ``seed`` (of random weights, augmented views and the
        split), ``views``, ``view_area``, ``on_error``.

    Returns
    -------
    FeatureStore
        Open for reading; ``store.source`` is the image source.
    """
    unknown = set(options) - {*_RECIPE_OPTIONS, *_RUNTIME_OPTIONS, *_SOURCE_OPTIONS}
    if unknown:
        raise TypeError(f"extract() got unknown settings {', '.join(sorted(unknown))}; valid: "
                        f"{', '.join(dict.fromkeys([*_RECIPE_OPTIONS, *_RUNTIME_OPTIONS, *_SOURCE_OPTIONS]))}")
    def of(names) -> dict:
        return {key: options[key] for key in names if key in options}

    seed, runtime = options.get("seed", 0), Runtime(**of(_RUNTIME_OPTIONS))
    source = extraction_source(source, split=Split(**of(_SPLIT_OPTIONS)), views=options.get("views", 0), seed=seed,
                               view_area=options.get("view_area", VIEW_AREA), cache_dir=cache_dir)
    done = extract_backbone(source, backbone, taps=taps, poolings=pooling, cache_dir=cache_dir, runtime=runtime,
                            on_error=options.get("on_error", "skip"), weights=weights, seed=seed, image_size=image_size,
                            **of(_RECIPE_OPTIONS))
    return FeatureStore(done.path, source=source)
