"""Images -> CNN codes: backbones and their taps, weights, image sources, extraction, the HDF5 store.

This package never imports ``classifiers``; the store (``features.store``) is the only way
codes leave it.

Names are imported from their modules on first use (PEP 562, through ``lazy_loader``), so that ``from features
import MAP`` costs no torch import: the command line answers ``status`` without torch.
"""

import lazy_loader

_MODULES = {
    "registry": ["BACKBONES", "FAMILIES", "Backbone", "Family"],
    "backbones": ["BACKBONE_CHOICES", "TapInfo", "check_taps", "get_backbone", "list_taps", "top_block"],
    "layouts": ["Layout"],
    "names": ["DTYPES", "ON_ERROR", "PRECISIONS", "WEIGHTS_CHOICES", "choices_hint", "codes_names", "did_you_mean",
              "is_weights_file"],
    "weights": ["ResolvedWeights", "WeightsUnavailable", "build_model", "check_weights_name", "imagenet_checkpoint",
                "resolve_weights"],
    "pooling": ["MAP", "POOLINGS", "POOLING_CHOICES", "check_pooling"],
    "forward": ["Forward", "resolve_device"],
    "recipe": ["Recipe", "Runtime", "SPEC_DEFAULTS", "spec_of_store", "spec_differences"],
    "extraction": ["Extraction", "extract", "extraction_source", "extract_backbone", "extract_codes", "compute_codes",
                   "forward_seconds", "join_shard_stores"],
    "shards": ["Shard", "distributed_rank"],
    "sources": ["ImageSource", "ImageFolder", "ImageManifest", "ImageFiles", "ImageArrays", "Split"],
    "views": ["AugmentedViews"],
    "images": ["ImageError", "load_image"],
    "datasets": ["NAMED_DATASETS", "SOURCE_KINDS", "DatasetUnavailable", "dataset_fingerprint", "dataset_root",
                 "open_named_dataset", "open_source"],
    "store": ["FeatureStore", "StoreError", "read_codes", "verify_store", "consolidate_store", "codes_fingerprint"],
    "locks": ["LockHeld", "StoreLocked"],
    "errors": ["CnnCodesError", "UserError", "SettingError", "DataError", "FileInputError", "MissingFileError"],
}
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs=_MODULES)
