"""timm's models as backbones (``pip install "cnn-codes[timm]"``): ``timm/<name>`` for any
name of ``timm.list_models()``, with or without a pretrained tag (``timm/convnext_tiny.fb_in1k``,
``timm/vit_small_patch14_dinov2.lvd142m``).

Models are traced with timm's own FX feature extraction (``timm.models.create_feature_extractor``,
which knows timm's leaf modules); their stages are timm's ``feature_info`` modules
(``stages.2``, ``blocks.5``, ``layer3``). The images' preprocessing is the model's
pretrained config (mean, std, interpolation, crop percentage), as timm's own eval
transform applies it; pretrained weights are the tag's checkpoint, downloaded once into
the Hugging Face (or torch hub) cache and then read from there, offline.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from urllib.parse import urlparse

from torch import nn
from torch.hub import get_dir as torch_hub_dir
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification

from .errors import SettingError
from .library import TIMM_PREFIX, Library

try:
    import timm
    from timm.models import create_feature_extractor, get_graph_node_names
except ImportError:  # the extra is not installed: names are refused with what to install
    timm = None

__all__ = ["TIMM", "check_timm_name", "timm_transform", "pretrained_checkpoint", "download_pretrained",
           "build_timm"]


def _architecture(name: str) -> str:
    return name[len(TIMM_PREFIX):]


def check_timm_name(name: str) -> None:
    """A ValueError saying what to do when ``name`` names no timm model (or timm is missing)."""
    if timm is None:
        raise SettingError(f"backbone {name!r} needs timm: pip install \"cnn-codes[timm]\"")
    architecture = _architecture(name)
    base, _, tag = architecture.partition(".")
    if not timm.is_model(base):
        close = difflib.get_close_matches(base, timm.list_models(), n=3)
        raise SettingError(f"unknown timm model {base!r} in backbone {name!r}"
                           f"{'; did you mean ' + ', '.join(close) if close else ''}; any name of "
                           f"timm.list_models() works, e.g. timm/convnext_tiny.fb_in1k")
    if tag and architecture not in timm.list_pretrained(f"{base}.*"):
        raise SettingError(f"timm model {base!r} has no pretrained tag {tag!r}; its tags: "
                           f"{', '.join(timm.list_pretrained(f'{base}.*')) or 'none'}")


def _resize(model: nn.Module, name: str, image_size: int) -> nn.Module:
    """A timm ViT for ``image_size`` inputs: timm resamples its position embeddings in place."""
    if not hasattr(model, "set_input_size"):
        raise SettingError(f"{name} is built for one input size and timm cannot change it; use its own size")
    if tuple(model.patch_embed.img_size) != (image_size, image_size):
        model.set_input_size(img_size=image_size)
    return model


def build_timm(name: str, pretrained_file: str | None = None, **kwargs) -> nn.Module:
    """The timm model of ``name``, randomly initialised, or with the pretrained checkpoint
    at ``pretrained_file`` (loaded through timm, which adapts it to the model: position
    embeddings, ...), in eval mode."""
    overlay = {"pretrained_cfg_overlay": {"file": pretrained_file}} if pretrained_file else {}
    return timm.create_model(_architecture(name), pretrained=bool(pretrained_file), **overlay, **kwargs).eval()


TIMM = Library(
    build=build_timm,
    graph_node_names=lambda model: get_graph_node_names(model),
    feature_extractor=lambda model, return_nodes: create_feature_extractor(model, return_nodes),
    size_argument="img_size",
    resize=_resize,
    feature_info=lambda model: [info["module"] for info in getattr(model, "feature_info", [])],
    classifier=lambda model: model.pretrained_cfg.get("classifier"),
)


def _config(name: str):
    return timm.get_pretrained_cfg(_architecture(name))


def timm_transform(name: str, image_size: int) -> ImageClassification:
    """timm's eval transform of ``name``'s pretrained config for ``image_size`` crops: resize
    the shorter side to ``floor(image_size / crop_pct)``, centre crop, normalise."""
    config = _config(name)
    crop_pct = getattr(config, "crop_pct", None) or timm.data.DEFAULT_CROP_PCT
    return ImageClassification(
        crop_size=image_size, resize_size=math.floor(image_size / crop_pct),
        mean=list(getattr(config, "mean", None) or timm.data.IMAGENET_DEFAULT_MEAN),
        std=list(getattr(config, "std", None) or timm.data.IMAGENET_DEFAULT_STD),
        interpolation=InterpolationMode(getattr(config, "interpolation", None) or "bicubic"),
    )


def pretrained_source(name: str) -> str | None:
    """Where the tag's checkpoint comes from (``hf-hub:<repo>`` or a URL), None if it has none."""
    config = _config(name)
    if config is None:
        return None
    return f"hf-hub:{config.hf_hub_id}" if config.hf_hub_id else config.url or None


def pretrained_identity(name: str) -> str:
    """The model and its pretrained tag (``timm/convnext_tiny.fb_in1k``), also when ``name`` leaves the tag out."""
    return f"{TIMM_PREFIX}{_config(name).architecture}.{_config(name).tag}"


def pretrained_checkpoint(name: str) -> Path | None:
    """The tag's checkpoint file in the Hugging Face or torch hub cache, None if not there."""
    source = pretrained_source(name)
    if source is None:
        return None
    if source.startswith("hf-hub:"):
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(source[len("hf-hub:"):], filename)
            if isinstance(found, str):
                return Path(found)
        return None
    path = Path(torch_hub_dir()) / "checkpoints" / Path(urlparse(source).path).name
    return path if path.is_file() else None


def download_pretrained(name: str) -> None:
    """Fetch the tag's checkpoint into its cache through timm (the network's errors propagate)."""
    timm.create_model(_architecture(name), pretrained=True)
