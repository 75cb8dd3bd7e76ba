"""Extraction: an image source through a frozen backbone into the feature store.

All requested taps come from one forward pass; each tap is pooled on the device before
the copy to the host, so only ``(batch, channels)`` rows cross to the CPU. The store file
is named by a cache key over everything that changes the numbers, so a second extraction
with the same inputs finds the file and runs no CNN at all, and a new tap or pooling adds
datasets to the file without recomputing the ones it has.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .backbones import (
    ResolvedWeights,
    build_tap_extractor,
    describe_preprocessing,
    preprocessing,
    state_dict_sha256,
)
from .sources import ImageSource
from .store import FORMAT_VERSION, FeatureStore

__all__ = ["POOLINGS", "pool", "cache_path", "extract_codes", "Extraction"]

log = logging.getLogger(__name__)

POOLINGS = {
    "avg": lambda maps: maps.mean(dim=(2, 3)),
    "max": lambda maps: maps.amax(dim=(2, 3)),
}
"""Spatial pooling of a ``(batch, channels, height, width)`` map to ``(batch, channels)``."""


def pool(activation: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool a tap's output to one row per image; vector taps (fc, pool) pass through."""
    if activation.ndim == 2:
        return activation
    return POOLINGS[pooling](activation)


class _Preprocessed(Dataset):
    """The source's images through the weights' transform, with their row index."""

    def __init__(self, source: ImageSource, transform):
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        return self.transform(self.source.load(index)), index


def cache_path(cache_dir, source: ImageSource, weights: ResolvedWeights, pixels: dict) -> Path:
    """The store file for this source, backbone, weights and preprocessing.

    ``pixels`` is ``describe_preprocessing`` of the transform the images go through.

    Taps and poolings are not in the key: they are datasets inside the file.
    """
    key = {
        "format_version": FORMAT_VERSION,
        "source": source.fingerprint,
        "backbone": weights.backbone,
        "weights": weights.identity,
        "preprocessing": pixels,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{source.name}-{weights.backbone}-{digest}.h5"


@dataclass
class Extraction:
    """What an extraction did: the store it wrote and the codes it computed or found."""

    path: Path
    weights: ResolvedWeights
    computed: list[tuple[str, str]] = field(default_factory=list)
    cached: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    images: int = 0


def _store_attrs(source: ImageSource, weights: ResolvedWeights, pixels: dict) -> dict:
    return {
        "backbone": weights.backbone,
        "weights": weights.identity,
        "weights_url": weights.url or "",
        "weights_sha256": state_dict_sha256(weights.url) if weights.is_pretrained else "",
        "image_size": pixels["crop_size"][0],
        "preprocessing": json.dumps(pixels),
        "source": source.name,
        "source_fingerprint": source.fingerprint,
        "versions": json.dumps(
            {"torch": torch.__version__, "torchvision": torchvision.__version__, "h5py": h5py.__version__}
        ),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _codes_in_store(path: Path, source: ImageSource, weights: ResolvedWeights, pixels: dict) -> set:
    """The complete (tap, pooling) codes of the store at ``path``, creating it if it is new."""
    if path.exists():
        store = FeatureStore(path)
    else:
        store = FeatureStore.create(
            path, source.ids, source.labels, source.splits, source.classes,
            _store_attrs(source, weights, pixels),
        )
    with store:
        return set(store.available())


def extract_codes(
    source: ImageSource,
    weights: ResolvedWeights,
    taps: list[str],
    poolings: list[str],
    image_size: int,
    cache_dir,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> Extraction:
    """Compute the codes of ``taps`` x ``poolings`` that the cache does not have yet.

    Parameters
    ----------
    source : ImageSource
    weights : ResolvedWeights
        From ``resolve_weights``; names the backbone.
    taps : list of str
        Readable tap names of the backbone (``pool3``, ``layer3``).
    poolings : list of str
        Keys of ``POOLINGS``.
    image_size : int
        Side of the square crop fed to the network.
    cache_dir : path
        Folder of the store files.
    progress : bool
        A progress bar on a terminal (never when output is redirected).

    Returns
    -------
    Extraction
        The store path and which codes were computed and which were already there.
    """
    wanted = [(tap, pooling) for tap in taps for pooling in poolings]
    transform = preprocessing(weights.backbone, image_size)
    pixels = describe_preprocessing(transform)
    path = cache_path(cache_dir, source, weights, pixels)
    started = time.perf_counter()
    have = _codes_in_store(path, source, weights, pixels)
    todo = [item for item in wanted if item not in have]
    result = Extraction(path, weights, computed=todo, cached=[item for item in wanted if item in have])
    if not todo:
        return result
    extractor = build_tap_extractor(weights, sorted({tap for tap, _ in todo})).to(device)
    loader = DataLoader(
        _Preprocessed(source, transform),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=device.startswith("cuda"),
    )
    batches = iter(loader)  # workers fork here, before any HDF5 file is open: none inherits a handle
    begun = set()
    bar = tqdm(total=len(source), desc=f"extract {weights.backbone}", unit="img",
               disable=None if progress else True)
    with bar, FeatureStore(path, mode="r+") as store, torch.inference_mode():
        for images, indices in batches:
            outputs = extractor(images.to(device, non_blocking=True))
            for tap, pooling in todo:
                rows = pool(outputs[tap], pooling).float().cpu().numpy()
                if (tap, pooling) not in begun:
                    store.begin(tap, pooling, rows.shape[1])
                    begun.add((tap, pooling))
                store.write(tap, pooling, int(indices[0]), rows)
            bar.update(len(indices))
        for tap, pooling in todo:
            store.finish(tap, pooling)
    result.seconds = time.perf_counter() - started
    result.images = len(source)
    return result
