"""Where models come from: a ``Library`` (torchvision's, timm's) says how to build and trace them.

Apart from ``features.backbones`` so that a library's own module (``features.timm_backbones``,
imported only for ``timm/...`` names) can define its ``Library`` without importing the
module that chooses among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # annotations only: this module imports no torch
    from torch import nn

__all__ = ["Library", "TIMM_PREFIX"]

TIMM_PREFIX = "timm/"
"""Backbone names starting with it are timm's models (``timm/convnext_tiny.fb_in1k``)."""


@dataclass(frozen=True)
class Library:
    """Where models come from, and how they are traced.

    ``build(name, **kwargs)`` makes a randomly initialised model (the caller seeds and
    places it); ``size_argument`` is the builder's keyword for the input size of a sized
    family; ``resize(model, name, size)`` returns a built model for another input size,
    its position embeddings interpolated; ``feature_info(model)`` names the stage modules
    a library declares (timm's ``feature_info``); ``classifier(model)`` the classifier
    module where the library says (timm's pretrained config), else None.
    """

    build: Callable[..., nn.Module]
    graph_node_names: Callable
    feature_extractor: Callable
    size_argument: str
    resize: Callable[[nn.Module, str, int], nn.Module]
    feature_info: Callable[[nn.Module], list[str]] = lambda model: []
    classifier: Callable[[nn.Module], str | None] = lambda model: None
