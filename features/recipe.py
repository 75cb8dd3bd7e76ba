"""What decides an image's codes (``Recipe``), apart from how the network runs (``Runtime``).

A recipe is one frozen value: the weights, the image size, the JPEG decoding, the storage
types, the forward's arithmetic and where JPEGs are decoded. It is the only definition of
the store file that caches its codes, of the store's attributes, of a fitted model's
feature spec, and of the check at prediction time that new images get the codes a model
was fitted on. ``Runtime`` (device, batch size, workers, memory layout, compilation,
progress) changes how fast codes come, never what they are beyond float rounding, so it
is in none of those.

Importing this module costs no torch: configurations take their defaults from here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from .constraints import Interval, Options, Pattern, Rule, check_fields
from .names import DTYPES, PRECISIONS
from .pooling import MAP

if TYPE_CHECKING:
    from .forward import Forward
    from .sources import ImageSource
    from .weights import ResolvedWeights

__all__ = ["Recipe", "Runtime", "SPEC_DEFAULTS", "spec_of_store", "spec_differences"]

SPEC_KEYS = ("backbone", "weights", "weights_sha256", "preprocessing", "precision", "calibration", "decode_on_device")
"""Store attributes that change the codes of an image (besides tap and pooling)."""

SPEC_DEFAULTS = {"precision": "float32", "decode_on_device": False, "map_dtype": "float16"}
"""Spec values that stores and models leave out at their defaults, so that those made before
a setting existed keep their names and stay valid; a missing value counts as its default."""


@dataclass(frozen=True)
class Recipe:
    """What decides an image's codes, besides the tap and the pooling.

    Parameters
    ----------
    weights : ResolvedWeights
        From ``resolve_weights`` (or ``Recipe.resolve``); names the backbone.
    image_size : int
        Side of the square crop fed to the network.
    fast_decode : bool
        Decode large JPEGs at reduced scale (``load_image``): several times faster on
        camera photos, pixels slightly different.
    dtype, map_dtype : {"float32", "float16"}
        Storage type of pooled codes, and of whole maps (pooling ``none``).
    precision : {"float32", "bfloat16", "int8"}
        Arithmetic of the forward pass (bfloat16: under autocast, fast on GPUs and on CPUs
        with ``avx512_bf16`` or AMX; int8: calibrated static quantization, CPU only,
        ``features.quantize``).
    decode_on_device : bool
        JPEGs decoded, resized and cropped on the device (``Forward.decode_jpegs``).
    calibration_images, calibration_seed : int
        int8 only: the size and seed of the stratified sample of training images that
        sets the activations' ranges (``features.quantize.calibration_sample``).
    calibration_sample : str
        int8 only: the fingerprint of that sample, set by the extraction once the images
        are known (``with_calibration_sample``), read back from a model's spec by predict.
    """

    weights: ResolvedWeights
    image_size: int = 224
    fast_decode: bool = True
    dtype: str = "float32"
    map_dtype: str = "float16"
    precision: str = "float32"
    decode_on_device: bool = False
    calibration_images: int = 256
    calibration_seed: int = 0
    calibration_sample: str = ""

    constraints: ClassVar[dict] = {
        # the backbone may need more (a multiple of a ViT's patch): check_taps says so before any work
        "image_size": Rule(Interval(int, 1), hint="e.g. 224"),
        "fast_decode": bool,
        "dtype": Options(DTYPES),
        "map_dtype": Options(DTYPES),
        "precision": Options(PRECISIONS),
        "decode_on_device": bool,
        "calibration_images": Rule(Interval(int, 1), hint="e.g. 256"),
        "calibration_seed": Interval(int, 0),
        "calibration_sample": str,
    }
    """What each setting accepts (``features.constraints``): the one check, for a config and for Python."""

    def __post_init__(self):
        check_fields(self, "weights")

    @classmethod
    def resolve(cls, backbone: str, weights: str = "imagenet", seed: int = 0, **settings) -> Recipe:
        """The recipe of ``backbone`` with ``weights`` by name (``resolve_weights``: downloads
        torchvision's weights when needed) and the other fields as given."""
        from .weights import resolve_weights

        return cls(resolve_weights(backbone, weights, seed), **settings)

    @classmethod
    def from_spec(cls, spec: dict, weights: ResolvedWeights) -> Recipe:
        """The recipe that remakes the codes of a model's feature spec (``spec``) with ``weights``.

        Models older than ``fast_decode`` were fitted on fully decoded JPEGs; a setting the
        spec leaves out is at its default.
        """
        calibration = spec.get("calibration") or {}
        return cls(weights, image_size=spec["preprocessing"]["crop_size"][0],
                   fast_decode=spec["preprocessing"].get("fast_decode", False),
                   map_dtype=spec.get("map_dtype", SPEC_DEFAULTS["map_dtype"]),
                   precision=spec.get("precision", SPEC_DEFAULTS["precision"]),
                   decode_on_device=bool(spec.get("decode_on_device", SPEC_DEFAULTS["decode_on_device"])),
                   **{f"calibration_{key}": calibration[key] for key in ("images", "seed", "sample")
                      if key in calibration})

    @property
    def backbone(self) -> str:
        return self.weights.backbone

    @cached_property
    def transform(self):
        """The weights' own eval transform at ``image_size`` (``features.weights.preprocessing``)."""
        from .weights import preprocessing

        return preprocessing(self.weights, self.image_size)

    @cached_property
    def pixels(self) -> dict:
        """How an image file becomes the network's input: the transform's numbers and the JPEG decoding."""
        from .weights import describe_preprocessing

        return {**describe_preprocessing(self.transform), "fast_decode": bool(self.fast_decode)}

    @property
    def calibration(self) -> dict | None:
        """int8's calibration: the sample (size, seed, fingerprint) and how the network is
        quantized on this machine (``features.quantize.quantization_settings``); None otherwise."""
        if self.precision != "int8":
            return None
        from .quantize import quantization_settings

        return {"images": self.calibration_images, "seed": self.calibration_seed, "sample": self.calibration_sample,
                **quantization_settings()}

    def calibration_file(self, cache_dir) -> Path:
        """Where int8's calibrated ranges for this recipe are kept (``features.quantize.int8_model``)."""
        from .quantize import calibration_path

        return calibration_path(cache_dir, self.backbone, {"weights": self.weights.key, "preprocessing": self.pixels,
                                                           "calibration": self.calibration})

    def _forward_settings(self) -> dict:
        """The forward's settings that change the codes beyond rounding, only away from their defaults."""
        settings = {key: getattr(self, key) for key in ("precision", "decode_on_device")
                    if getattr(self, key) != SPEC_DEFAULTS[key]}
        return {**settings, "calibration": self.calibration} if self.calibration else settings

    def store_path(self, cache_dir, source: ImageSource) -> Path:
        """The store file of ``source``'s codes made this way.

        Taps and poolings are not in the key (they are datasets inside the file), nor are
        the images themselves (they are rows, each with its own fingerprint), nor the splits.
        """
        from .store import FORMAT_VERSION  # of the store's layout

        key = {
            "format_version": FORMAT_VERSION,
            "source": source.identity,
            "backbone": self.backbone,
            "weights": self.weights.key,
            "preprocessing": self.pixels,
            "dtype": self.dtype,
            "map_dtype": self.map_dtype,
            **self._forward_settings(),
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return Path(cache_dir) / f"{source.name}-{self.backbone}-{digest}.h5"

    @cached_property
    def _code_spec(self) -> dict:
        from .weights import weights_sha256  # hashes the weights' file: once per recipe

        return {"backbone": self.backbone, "weights": self.weights.identity,
                "weights_sha256": weights_sha256(self.weights), "preprocessing": self.pixels,
                **self._forward_settings()}

    def spec(self, tap: str, pooling: str) -> dict:
        """The feature spec of ``tap``/``pooling`` codes made this way: what a model fitted on
        them records, and what prediction checks (``spec_differences``)."""
        maps = {"map_dtype": self.map_dtype} if pooling == MAP else {}  # prediction rounds a new map to it
        return {**self._code_spec, **maps, "tap": tap, "pooling": pooling}

    def store_attrs(self, source: ImageSource) -> dict:
        """The attributes of this recipe's store of ``source``: the spec's values and what
        a reader needs to know where the codes came from."""
        import h5py
        import torch
        import torchvision

        return {
            **self._code_spec,
            "weights_url": self.weights.url or "",
            "weights_file": self.weights.file or "",
            "weights_setting": self.weights.setting,  # outside the key and the spec: they name the weights already
            "weights_seed": self.weights.seed,
            "image_size": self.image_size,
            "preprocessing": json.dumps(self.pixels),
            **({"calibration": json.dumps(self.calibration)} if self.calibration else {}),
            "dtype": self.dtype,
            "map_dtype": self.map_dtype,
            "source": source.name,
            "source_identity": source.identity,
            "source_fingerprint": source.fingerprint,
            "versions": json.dumps(
                {"torch": torch.__version__, "torchvision": torchvision.__version__, "h5py": h5py.__version__}
            ),
        }


def spec_of_store(attrs: dict, tap: str, pooling: str) -> dict:
    """The feature spec of a store's ``tap``/``pooling`` codes, from its attributes
    (``FeatureStore.attrs``, written by ``Recipe.store_attrs``)."""
    spec = {key: attrs[key] for key in SPEC_KEYS if key in attrs}
    for key in ("preprocessing", "calibration"):
        if isinstance(spec.get(key), str):
            spec[key] = json.loads(spec[key])
    if pooling == MAP:
        spec["map_dtype"] = attrs.get("map_dtype", SPEC_DEFAULTS["map_dtype"])
    return {**spec, "tap": tap, "pooling": pooling}


def spec_differences(saved: dict, given: dict) -> list[str]:
    """``"key: model X, features Y"`` for every setting where a model's spec (``saved``) and
    the spec of the codes it is given differ.

    Both ways: a key of either counts, a missing value as its default (``SPEC_DEFAULTS``).
    Keys only a model records (``n_features``) are not compared.
    """
    keys = dict.fromkeys([*given, *(key for key in saved if key in SPEC_DEFAULTS)])
    pairs = {key: (saved.get(key, SPEC_DEFAULTS.get(key)), given.get(key, SPEC_DEFAULTS.get(key))) for key in keys}
    return [f"{key}: model {model!r}, features {codes!r}" for key, (model, codes) in pairs.items() if model != codes]


@dataclass(frozen=True)
class Runtime:
    """How the network runs: changes the speed, never the codes (beyond float rounding).

    Parameters
    ----------
    device : str
        ``auto`` (the GPU when there is one, as on the command line), ``cpu``, ``cuda``,
        ``cuda:N`` or ``mps``.
    batch_size : int
    num_workers : int or "auto"
        DataLoader processes that decode images beside the forward (0: in this process);
        ``auto`` chooses from the cores and the device.
    channels_last, compile : bool
        Memory layout of the activations; ``torch.compile`` (worth it for large runs only).
    map_budget_gb : float
        The largest whole-map dataset (rows x bytes per row) extraction may write; a larger
        one is refused before any CNN work.
    progress : bool
        Progress bars (tqdm's auto mode: a terminal or a notebook; never when redirected).
    """

    device: str = "auto"
    batch_size: int = 32
    num_workers: int | str = "auto"
    channels_last: bool = True
    compile: bool = False
    map_budget_gb: float = 8.0
    progress: bool = True

    constraints: ClassVar[dict] = {
        "device": Pattern(r"auto|cpu|cuda(:\d+)?|mps", "auto, cpu, cuda, cuda:N or mps"),
        "batch_size": Interval(int, 1),
        "num_workers": Rule(Interval(int, 0), Options(("auto",))),
        "channels_last": bool,
        "compile": bool,
        "map_budget_gb": Rule(Interval(float, 0, open_low=True), hint="gigabytes"),
        "progress": bool,
    }
    """What each setting accepts (``features.constraints``)."""

    def __post_init__(self):
        check_fields(self)

    def forward(self, recipe: Recipe) -> Forward:
        """The forward pass that makes ``recipe``'s codes on this runtime's device."""
        from .forward import Forward, resolve_device

        return Forward(resolve_device(self.device), recipe.precision, self.channels_last, self.compile,
                       recipe.decode_on_device)
