"""The names ``features`` exports, each imported from its module on first use.

One source of truth: ``features/__init__.py`` hands this file to ``lazy_loader.attach_stub``,
and editors and type checkers read it as the package's interface. A new public name is one
line here (and in its module's ``__all__``).
"""

from .registry import BACKBONES, FAMILIES, Backbone, Family
from .backbones import BACKBONE_CHOICES, TapInfo, check_taps, get_backbone, list_taps, top_block
from .layouts import Layout
from .names import (
    DTYPES, ON_ERROR, PRECISIONS, WEIGHTS_CHOICES, choices_hint, codes_names, did_you_mean, is_weights_file,
)
from .weights import (
    ResolvedWeights, WeightsUnavailable, build_model, check_weights_name, imagenet_checkpoint, resolve_weights,
)
from .pooling import MAP, POOLINGS, POOLING_CHOICES, check_pooling
from .forward import Forward, resolve_device
from .recipe import Recipe, Runtime, SPEC_DEFAULTS, spec_of_store, spec_differences
from .extraction import (
    Extraction, extract, extraction_source, extract_backbone, extract_codes, compute_codes, forward_seconds,
    join_shard_stores,
)
from .shards import Shard, distributed_rank
from .sources import ImageSource, ImageFolder, ImageManifest, ImageFiles, ImageArrays, Split
from .views import VIEW_AREA, AugmentedViews
from .images import ImageError, load_image
from .datasets import (
    NAMED_DATASETS, SOURCE_KINDS, DatasetUnavailable, dataset_fingerprint, dataset_root, open_named_dataset, open_source,
)
from .store import FeatureStore, StoreError, read_codes, verify_store, consolidate_store, codes_fingerprint
from .locks import LockHeld, StoreLocked
from .errors import CnnCodesError, UserError, SettingError, DataError, FileInputError, MissingFileError
