"""Images -> CNN codes: backbones and their taps, weights, image sources, extraction, the HDF5 store.

This package never imports ``classifiers``; the store (``features.store``) is the only way
codes leave it.
"""

from .backbones import BACKBONE_CHOICES, BACKBONES, Backbone, TapInfo, get_backbone, list_taps
from .datasets import NAMED_DATASETS, DatasetUnavailable, open_named_dataset
from .extract import (
    DTYPES,
    ON_ERROR,
    Extraction,
    code_spec,
    compute_codes,
    extract_codes,
    forward_seconds,
    join_shard_stores,
)
from .forward import PRECISIONS, Forward
from .images import ImageError, load_image
from .lock import StoreLocked
from .pooling import MAP, POOLING_CHOICES, POOLINGS, check_pooling
from .sources import ImageArrays, ImageFiles, ImageFolder, ImageManifest, ImageSource
from .store import FeatureStore, StoreError, consolidate_store, read_codes, verify_store
from .shards import Shard, distributed_rank
from .views import AugmentedViews
from .weights import WEIGHTS_CHOICES, WeightsUnavailable, check_weights_name, resolve_weights

__all__ = [
    "BACKBONES",
    "BACKBONE_CHOICES",
    "Backbone",
    "TapInfo",
    "get_backbone",
    "list_taps",
    "WEIGHTS_CHOICES",
    "WeightsUnavailable",
    "check_weights_name",
    "resolve_weights",
    "MAP",
    "POOLINGS",
    "POOLING_CHOICES",
    "check_pooling",
    "DTYPES",
    "ON_ERROR",
    "PRECISIONS",
    "Forward",
    "Extraction",
    "extract_codes",
    "compute_codes",
    "code_spec",
    "forward_seconds",
    "join_shard_stores",
    "Shard",
    "distributed_rank",
    "ImageSource",
    "ImageFolder",
    "ImageManifest",
    "ImageFiles",
    "ImageArrays",
    "AugmentedViews",
    "ImageError",
    "load_image",
    "NAMED_DATASETS",
    "DatasetUnavailable",
    "open_named_dataset",
    "FeatureStore",
    "StoreError",
    "StoreLocked",
    "read_codes",
    "verify_store",
    "consolidate_store",
]
