"""Images -> CNN codes: backbones and their taps, image sources, extraction, the HDF5 store.

This package never imports ``classifiers``; the store (``features.store``) is the only way
codes leave it.
"""

from .backbones import BACKBONES, WEIGHTS_CHOICES, WeightsUnavailable, get_backbone, resolve_weights
from .extract import POOLINGS, Extraction, extract_codes
from .sources import NAMED_DATASETS, ImageArrays, ImageFolder, ImageSource, open_named_dataset
from .store import FeatureStore, StoreError, read_codes

__all__ = [
    "BACKBONES",
    "WEIGHTS_CHOICES",
    "POOLINGS",
    "NAMED_DATASETS",
    "WeightsUnavailable",
    "get_backbone",
    "resolve_weights",
    "Extraction",
    "extract_codes",
    "ImageSource",
    "ImageFolder",
    "ImageArrays",
    "open_named_dataset",
    "FeatureStore",
    "StoreError",
    "read_codes",
]
