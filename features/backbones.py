"""The backbone registry: frozen torchvision classifiers cut at named depths ("taps").

One entry per model says which graph nodes are worth reading and under which readable
name (VGG16's ``pool3`` is node ``features.16``). Adding a model is adding an entry here;
nothing else in the project branches on model names. Preprocessing comes from the
torchvision weights enum, so no mean, std or crop size is hard-coded.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torch.hub import get_dir as torch_hub_dir
from torch.hub import load_state_dict_from_url
from torchvision.models import get_model, get_model_weights
from torchvision.models.feature_extraction import create_feature_extractor

__all__ = [
    "Backbone",
    "BACKBONES",
    "WEIGHTS_CHOICES",
    "ResolvedWeights",
    "WeightsUnavailable",
    "get_backbone",
    "resolve_weights",
    "build_model",
    "build_tap_extractor",
    "preprocessing",
    "describe_preprocessing",
    "state_dict_sha256",
]

log = logging.getLogger(__name__)

WEIGHTS_CHOICES = ("imagenet", "random", "auto")
"""``imagenet``: torchvision's default ImageNet weights, an error when they cannot be had.
``random``: seeded random initialisation (mechanics and timing only, not transfer learning).
``auto``: ImageNet weights when torchvision can load them, random weights otherwise."""


@dataclass(frozen=True)
class Backbone:
    """A registered model and its taps.

    Parameters
    ----------
    name : str
        The torchvision model name (``torchvision.models.get_model``).
    taps : dict of str to str
        Readable tap name -> graph node name (``get_graph_node_names``), shallow to deep.
    default_taps : tuple of str
        The taps extracted when the config names none for this backbone.
    """

    name: str
    taps: dict[str, str]
    default_taps: tuple[str, ...]

    def node(self, tap: str) -> str:
        """The graph node of a readable tap name, or a clear error listing the valid ones."""
        if tap not in self.taps:
            raise ValueError(
                f"unknown tap {tap!r} for backbone {self.name!r}; valid taps: "
                f"{', '.join(self.taps)}"
            )
        return self.taps[tap]

    def depth(self, tap: str) -> int:
        """Position of a tap from the input (0 is the shallowest), for ordering plots."""
        return list(self.taps).index(tap)


BACKBONES: dict[str, Backbone] = {
    backbone.name: backbone
    for backbone in (
        Backbone(
            "vgg16",
            taps={
                "pool1": "features.4",
                "pool2": "features.9",
                "pool3": "features.16",
                "pool4": "features.23",
                "pool5": "features.30",
                "fc6": "classifier.1",  # after ReLU
                "fc7": "classifier.4",  # after ReLU
            },
            default_taps=("pool3", "pool4", "pool5"),
        ),
        Backbone(
            "resnet50",
            taps={
                "stem": "maxpool",
                "layer1": "layer1",
                "layer2": "layer2",
                "layer3": "layer3",
                "layer4": "layer4",
                "pool": "flatten",
            },
            default_taps=("layer2", "layer3", "pool"),
        ),
    )
}


def get_backbone(name: str) -> Backbone:
    """The registry entry for ``name``, or an error naming the registered backbones."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; registered: {', '.join(BACKBONES)}")
    return BACKBONES[name]


class WeightsUnavailable(RuntimeError):
    """ImageNet weights were asked for and could neither be found in the cache nor downloaded."""


@dataclass(frozen=True)
class ResolvedWeights:
    """Which weights a backbone will run with, known before any model is built.

    ``identity`` is what the feature store records and what the cache key hashes:
    the torchvision weights name (``VGG16_Weights.IMAGENET1K_V1``) or ``random(seed=0)``.
    """

    backbone: str
    identity: str
    url: str | None
    seed: int
    fell_back: bool = False

    @property
    def is_pretrained(self) -> bool:
        return self.url is not None


def _default_weights(backbone: str):
    return get_model_weights(backbone).DEFAULT


def _cached_checkpoint(url: str) -> Path:
    return Path(torch_hub_dir()) / "checkpoints" / Path(urlparse(url).path).name


def _fetch_state_dict(weights) -> dict:
    """Load the checkpoint from torch's hub cache, downloading it once if it is missing."""
    try:
        return load_state_dict_from_url(weights.url, progress=True, check_hash=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad hash a RuntimeError
        raise WeightsUnavailable(f"cannot load the ImageNet weights {weights} ({weights.url}): {error}") from error


def resolve_weights(backbone: str, weights: str, seed: int = 0) -> ResolvedWeights:
    """Decide which weights ``backbone`` runs with, downloading ImageNet weights if needed.

    Done before any CNN work so that the weights' identity can name the feature cache:
    a cache hit then costs no model build at all.
    """
    if weights not in WEIGHTS_CHOICES:
        raise ValueError(f"unknown weights {weights!r}; valid: {', '.join(WEIGHTS_CHOICES)}")
    random = ResolvedWeights(backbone, f"random(seed={seed})", None, seed)
    if weights == "random":
        return random
    pretrained = _default_weights(backbone)
    resolved = ResolvedWeights(backbone, str(pretrained), pretrained.url, seed)
    if _cached_checkpoint(pretrained.url).is_file():
        return resolved
    try:
        _fetch_state_dict(pretrained)  # stores the file in the hub cache for build_model
    except WeightsUnavailable as error:
        if weights == "imagenet":
            raise WeightsUnavailable(
                f"{error}. Connect to the internet once so torchvision can download them into "
                f"{_cached_checkpoint(pretrained.url).parent}, or set features.weights = \"auto\" "
                f"(random weights when ImageNet weights are missing) or \"random\""
            ) from error
        log.warning("weights = \"auto\": %s; using random weights for %s, so its numbers are not "
                    "transfer learning", error, backbone)
        return ResolvedWeights(backbone, random.identity, None, seed, fell_back=True)
    return resolved


def build_model(weights: ResolvedWeights) -> nn.Module:
    """The full classifier in eval mode, with pretrained or seeded random weights."""
    with torch.random.fork_rng(devices=[]):  # seed without touching the caller's RNG
        torch.manual_seed(weights.seed)
        model = get_model(weights.backbone, weights=None)
    if weights.is_pretrained:
        model.load_state_dict(_fetch_state_dict(_default_weights(weights.backbone)))
    return model.eval().requires_grad_(False)


def build_tap_extractor(weights: ResolvedWeights, taps: list[str]) -> nn.Module:
    """A frozen module returning ``{tap: activation}`` for the requested taps, one forward pass.

    torchvision's FX feature extractor drops the layers after the deepest tap, so a
    ``pool3`` extraction never runs VGG16's fully connected layers.
    """
    backbone = get_backbone(weights.backbone)
    return_nodes = {backbone.node(tap): tap for tap in taps}
    return create_feature_extractor(build_model(weights), return_nodes=return_nodes).eval()


def preprocessing(backbone: str, image_size: int):
    """The weights' own eval transform, resized for ``image_size`` crops.

    The resize/crop ratio of the weights is kept (ImageNet: 256 -> 224), so at 224 this is
    exactly torchvision's transform. Random weights use the same normalisation, so that
    switching weights never changes the pixels a model sees.
    """
    transform = _default_weights(backbone).transforms()
    resize = round(image_size * transform.resize_size[0] / transform.crop_size[0])
    return _default_weights(backbone).transforms(crop_size=image_size, resize_size=resize)


def describe_preprocessing(transform) -> dict:
    """The numbers of a transform that change the pixels, for the store's attributes."""
    return {
        "resize_size": list(transform.resize_size),
        "crop_size": list(transform.crop_size),
        "mean": list(transform.mean),
        "std": list(transform.std),
        "interpolation": transform.interpolation.value,
        "antialias": bool(transform.antialias),
    }


def state_dict_sha256(url: str) -> str:
    """sha256 of the cached checkpoint file (the file torchvision downloaded)."""
    digest = hashlib.sha256()
    with open(_cached_checkpoint(url), "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
