"""Which weights a backbone runs with, and the preprocessing that goes with them.

``features.weights`` names them: ``imagenet`` (torchvision's default weights for the
model; for a timm model, ``imagenet`` or ``pretrained``: its pretrained tag's), a
torchvision weights value (``IMAGENET1K_V2``), a local state-dict file, ``random``
(seeded) or ``auto`` (pretrained when they can be had, random otherwise). Weights are
resolved before any model is built, because their identity names the feature cache: a
cache hit then costs no model build at all.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torch.hub import get_dir as torch_hub_dir
from torch.hub import load_state_dict_from_url
from torchvision.models import get_model, get_model_weights, get_weight

from .backbones import get_backbone, library_of, meta_model, resize_inputs, tap_extractor
from .errors import FileInputError, SettingError
from .files import file_sha256
from .library import TIMM_PREFIX
from .names import WEIGHTS_CHOICES, WEIGHTS_FILE_SUFFIXES, is_weights_file

__all__ = [
    "ResolvedWeights",
    "WeightsUnavailable",
    "check_weights_name",
    "imagenet_checkpoint",
    "resolve_weights",
    "build_model",
    "build_tap_extractor",
    "preprocessing",
    "describe_preprocessing",
    "weights_sha256",
]

log = logging.getLogger(__name__)

_SHOWN = 6  # parameter names listed in an error message before "..."


class WeightsUnavailable(FileInputError):
    """The weights asked for cannot be had: not downloadable, or a file that does not fit."""


@dataclass(frozen=True)
class ResolvedWeights:
    """Which weights a backbone will run with, known before any model is built.

    ``identity`` is what the feature store records: the torchvision weights name
    (``VGG16_Weights.IMAGENET1K_V1``), ``random(seed=0)``, or a file's name. ``key`` is
    what the cache key hashes (for a file its sha256, so a moved file finds its codes).
    ``transforms`` names the torchvision weights whose preprocessing the images get.
    ``setting`` is the ``features.weights`` value that resolves to these weights again
    with ``seed`` (``random`` for ``auto``'s fallback, the torchvision weights value that
    ``imagenet`` named, a file's resolved path): the store records both, so that a map head
    rebuilds the layers after its tap with the weights the codes were made with.
    """

    backbone: str
    identity: str
    transforms: str
    url: str | None = None
    file: str | None = None
    sha256: str = ""
    seed: int = 0
    fell_back: bool = False
    setting: str = ""

    @property
    def is_pretrained(self) -> bool:
        return self.url is not None or self.file is not None

    @property
    def key(self) -> str:
        return self.sha256 or self.identity


def _is_timm(backbone: str) -> bool:
    return backbone.startswith(TIMM_PREFIX)


_TIMM_PRETRAINED = "pretrained"
"""For a timm model, a synonym of ``imagenet``: the weights of its pretrained tag."""


def check_weights_name(backbone: str, value: str) -> None:
    """A ValueError listing the valid choices when ``value`` cannot name weights of ``backbone``
    (or the close matches when ``backbone`` is unknown)."""
    get_backbone(backbone)
    names = [_TIMM_PRETRAINED] if _is_timm(backbone) else list(get_model_weights(backbone).__members__)
    if value not in WEIGHTS_CHOICES and value not in names and not is_weights_file(value):
        raise SettingError(
            f"weights {value!r} are not valid for {backbone}; valid: {', '.join(WEIGHTS_CHOICES)}, "
            f"{', '.join(names)}, or a state-dict file ending in {' or '.join(WEIGHTS_FILE_SUFFIXES)}"
        )


def _cached_checkpoint(url: str) -> Path:
    return Path(torch_hub_dir()) / "checkpoints" / Path(urlparse(url).path).name


def imagenet_checkpoint(backbone: str) -> Path:
    """Where torch's hub cache keeps ``backbone``'s default ImageNet weights once downloaded."""
    return _cached_checkpoint(get_model_weights(backbone).DEFAULT.url)


def _fetch_state_dict(weights) -> dict:
    """Load the checkpoint from torch's hub cache, downloading it once if it is missing."""
    try:
        return load_state_dict_from_url(weights.url, progress=True, check_hash=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad hash a RuntimeError
        raise WeightsUnavailable(f"cannot load the ImageNet weights {weights} ({weights.url}): {error}") from error


def weights_sha256(weights: ResolvedWeights) -> str:
    """sha256 of the weights' file (a state-dict file, torchvision's or timm's checkpoint); "" for random."""
    if weights.sha256 or not weights.url:
        return weights.sha256
    if _is_timm(weights.backbone):
        from .timm_backbones import pretrained_checkpoint

        return file_sha256(pretrained_checkpoint(weights.backbone))
    return file_sha256(_cached_checkpoint(weights.url))


def _resolve_file(backbone: str, value: str, seed: int) -> ResolvedWeights:
    path = Path(value)
    if not path.is_file():
        raise WeightsUnavailable(f"weights file {path} does not exist; set features.weights to a .pth/.pt "
                                 f"state-dict file, or to imagenet, random or auto")
    default = backbone if _is_timm(backbone) else str(get_model_weights(backbone).DEFAULT)
    return ResolvedWeights(backbone, f"file {path.name}", default, file=str(path.resolve()),
                           sha256=file_sha256(path), seed=seed, setting=str(path.resolve()))


def resolve_weights(backbone: str, weights: str, seed: int = 0) -> ResolvedWeights:
    """Decide which weights ``backbone`` runs with, downloading torchvision weights if needed.

    Parameters
    ----------
    backbone : str
        A torchvision classification model name.
    weights : str
        ``imagenet``, ``random``, ``auto``, a weights value name of the model
        (``IMAGENET1K_V2``) or the path of a state-dict file.
    seed : int
        Seed of the random initialisation (``random``, and the layers a partial file lacks).
    """
    check_weights_name(backbone, weights)
    if is_weights_file(weights):
        return _resolve_file(backbone, weights, seed)
    if _is_timm(backbone):
        random = ResolvedWeights(backbone, f"random(seed={seed})", backbone, seed=seed, setting="random")
        return random if weights == "random" else _pretrained_or_fallback(_resolve_timm(backbone, seed), weights,
                                                                          random)
    enum = get_model_weights(backbone)
    random = ResolvedWeights(backbone, f"random(seed={seed})", str(enum.DEFAULT), seed=seed, setting="random")
    if weights == "random":
        return random
    pretrained = enum[weights] if weights in enum.__members__ else enum.DEFAULT
    resolved = ResolvedWeights(backbone, str(pretrained), str(pretrained), url=pretrained.url, seed=seed,
                               setting=pretrained.name)

    def fetch():
        if not _cached_checkpoint(pretrained.url).is_file():
            _fetch_state_dict(pretrained)  # stores the file in the hub cache for build_model
        return resolved

    return _pretrained_or_fallback(fetch, weights, random, f"torchvision can download them into "
                                                           f"{_cached_checkpoint(pretrained.url).parent}")


def _pretrained_or_fallback(fetch, weights: str, random: ResolvedWeights, where: str = "") -> ResolvedWeights:
    """``fetch()``'s pretrained weights; when they cannot be had, random ones for ``auto`` and
    otherwise a WeightsUnavailable saying what to do."""
    try:
        return fetch()
    except WeightsUnavailable as error:
        if weights != "auto":
            raise WeightsUnavailable(
                f"{error}. Connect to the internet once so {where or 'they can be downloaded'}, or set "
                f"features.weights = \"auto\" (random weights when pretrained weights are missing) or \"random\""
            ) from error
        log.warning("weights = \"auto\": %s; using random weights for %s, so its numbers are not "
                    "transfer learning", error, random.backbone)
        return ResolvedWeights(random.backbone, random.identity, random.transforms, seed=random.seed,
                               fell_back=True, setting=random.setting)


def _resolve_timm(backbone: str, seed: int):
    """``fetch`` for a timm model's pretrained tag: its checkpoint found in (or downloaded into) its cache."""
    from . import timm_backbones

    def fetch() -> ResolvedWeights:
        source = timm_backbones.pretrained_source(backbone)
        if source is None:
            raise WeightsUnavailable(f"timm model {backbone} has no pretrained weights")
        if timm_backbones.pretrained_checkpoint(backbone) is None:
            try:
                timm_backbones.download_pretrained(backbone)
            except Exception as error:  # noqa: BLE001 (the hub client's network errors have many types)
                raise WeightsUnavailable(f"cannot load the pretrained weights of {backbone} ({source}): "
                                         f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
                                         ) from error
        return ResolvedWeights(backbone, timm_backbones.pretrained_identity(backbone), backbone, url=source,
                               seed=seed, setting="imagenet")

    return fetch


def _names(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:_SHOWN]) + (f", ... ({len(keys)} in all)" if len(keys) > _SHOWN else "")


def _load_file(weights: ResolvedWeights, taps=()) -> dict:
    """The state dict in a weights file, loaded without running code from it, and checked.

    The file's parameters must exist in the model with the same shapes; it may lack some,
    but not any that a tap in ``taps`` needs. Which parameters a tap needs is read from
    the graph the feature extractor keeps for it (built on the ``meta`` device: no cost).
    """
    try:
        state = torch.load(weights.file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise WeightsUnavailable(
            f"cannot load weights file {weights.file}: {str(error).splitlines()[0]}; it must be a "
            f"state dict saved with torch.save(model.state_dict(), path)"
        ) from error
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise WeightsUnavailable(
            f"weights file {weights.file} holds a {type(state).__name__}, not a state dict "
            f"(a dict of tensors, as saved by torch.save(model.state_dict(), path))"
        )
    model = meta_model(weights.backbone)
    expected = model.state_dict()
    unexpected = set(state) - set(expected)
    if unexpected:
        raise WeightsUnavailable(
            f"weights file {weights.file} has parameters that {weights.backbone} does not have "
            f"({_names(unexpected)}); is it a state dict of another model?"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise WeightsUnavailable(
                f"weights file {weights.file} does not fit {weights.backbone}: {key} has shape "
                f"{tuple(value.shape)} in the file and {tuple(expected[key].shape)} in the model"
            )
    for tap in taps:
        needed = tap_extractor(model, weights.backbone, [tap]).state_dict()
        lacking = {key for key in needed if key not in state and not key.endswith("num_batches_tracked")}
        if lacking:
            raise WeightsUnavailable(
                f"tap {tap!r} of {weights.backbone} needs parameters that weights file "
                f"{weights.file} lacks: {_names(lacking)}; choose shallower taps or a complete file"
            )
    return state


def build_model(weights: ResolvedWeights, taps=(), image_size: int | None = None) -> nn.Module:
    """The full classifier in eval mode, with the weights asked for, for ``image_size``
    inputs (a ViT's position embeddings interpolated; None: the model's own size).

    ImageNet weights replace every parameter, so the model is built without any (on the
    meta device) and takes the checkpoint's tensors as they are: random initialisation
    would cost a second of start-up for VGG16's 138 M parameters, only to be overwritten.
    Otherwise it starts from seeded random weights: all there is for ``random``, and what
    a partial weights file leaves in the parameters it lacks (which no tap in ``taps`` needs).
    """
    return _ready(_built(weights, taps), weights.backbone, image_size)


def _ready(model: nn.Module, backbone: str, image_size: int | None) -> nn.Module:
    """``model`` frozen, in eval mode, for ``image_size`` inputs (None: as it is)."""
    model = model.eval().requires_grad_(False)
    return resize_inputs(model, backbone, image_size) if image_size else model


def _built(weights: ResolvedWeights, taps, state: dict | None = None) -> nn.Module:
    if weights.url and _is_timm(weights.backbone):
        from .timm_backbones import build_timm, pretrained_checkpoint

        return build_timm(weights.backbone, str(pretrained_checkpoint(weights.backbone)))
    if weights.url:
        state = _fetch_state_dict(get_weight(weights.transforms))
        with torch.device("meta"):
            model = get_model(weights.backbone, weights=None)
        model.load_state_dict(state, assign=True)
        return model
    if weights.file and state is None:
        state = _load_file(weights, taps)  # checked before the costly build
    with torch.random.fork_rng(devices=[]):  # seed without touching the caller's RNG
        torch.manual_seed(weights.seed)
        model = library_of(weights.backbone).build(weights.backbone)
    if state is not None:
        model.load_state_dict(state, strict=False)
    return model


def build_tap_extractor(weights: ResolvedWeights, taps: list[str], image_size: int | None = None) -> nn.Module:
    """A frozen module returning ``{tap: activation}`` for the requested taps, one forward pass,
    for ``image_size`` inputs (``build_model``).

    With a weights file that covers only part of the model (say VGG16's conv layers), a
    tap whose computation needs a parameter the file lacks is refused, before any build.
    """
    for tap in taps:  # names first: a typo should not wait for a model build
        get_backbone(weights.backbone).node(tap)
    state = _load_file(weights, taps) if weights.file else None
    if state is not None:
        extractor = _file_tap_extractor(weights, state, taps, image_size)
        if extractor is not None:
            return extractor
    return tap_extractor(_ready(_built(weights, taps, state), weights.backbone, image_size), weights.backbone, taps)


def _file_tap_extractor(weights: ResolvedWeights, state: dict, taps, image_size: int | None) -> nn.Module | None:
    """The tap extractor made of the weights file's tensors alone, or None where the taps
    would use a tensor the file does not hold (a buffer it lacks, or one that no state
    dict keeps and the model computes when built).

    A file holds every parameter the taps need (``_load_file`` checks it), so initialising
    the model first is wasted work: for VGG16's conv-only file, a second of random fully
    connected layers that no tap reads. Built on the ``meta`` device, those never exist.
    """
    model = meta_model(weights.backbone)
    model.load_state_dict(state, strict=False, assign=True)
    extractor = tap_extractor(_ready(model, weights.backbone, image_size), weights.backbone, taps)
    unset = any(tensor.is_meta for tensor in [*extractor.parameters(), *extractor.buffers()])
    return None if unset else extractor


def preprocessing(weights: ResolvedWeights, image_size: int):
    """The weights' own eval transform, resized for ``image_size`` crops.

    The resize/crop ratio of the weights is kept (ImageNet: 256 -> 224), so at 224 this is
    exactly torchvision's transform. Random weights and files use the model's default
    weights' transform, so that switching weights never changes the pixels a model sees.
    A timm model's is timm's eval transform of its pretrained config (``timm_transform``).
    """
    if _is_timm(weights.backbone):
        from .timm_backbones import timm_transform

        return timm_transform(weights.transforms, image_size)
    enum_value = get_weight(weights.transforms)
    transform = enum_value.transforms()
    resize = round(image_size * transform.resize_size[0] / transform.crop_size[0])
    return enum_value.transforms(crop_size=image_size, resize_size=resize)


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
