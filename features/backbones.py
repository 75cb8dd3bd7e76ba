"""Frozen torchvision classifiers cut at named depths ("taps").

Registered models (``features.registry``) have readable tap names; any other torchvision
classification model works too, with its FX graph node names as taps
(``torchvision.models.feature_extraction.get_graph_node_names``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import torch
import torchvision
from torch import nn
from torchvision.models import get_model, list_models
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from .names import did_you_mean
from .registry import BACKBONES, Backbone

__all__ = [
    "Backbone",
    "BACKBONES",
    "BACKBONE_CHOICES",
    "TapInfo",
    "get_backbone",
    "list_taps",
    "meta_model",
    "tap_extractor",
    "top_block",
]

BACKBONE_CHOICES = (*BACKBONES, *sorted(set(list_models(module=torchvision.models)) - set(BACKBONES)))
"""Every usable backbone name: the registry's first, then torchvision's classification models."""


def meta_model(name: str) -> nn.Module:
    """The model's structure without memory or initialisation cost (parameters on ``meta``)."""
    try:
        with torch.device("meta"):
            return get_model(name, weights=None).eval()
    except NotImplementedError:  # a builder that computes with tensors (RegNet): build, then drop the data
        return get_model(name, weights=None).to("meta").eval()


@lru_cache(maxsize=None)
def get_backbone(name: str) -> Backbone:
    """The registry entry for ``name``, or one made from the model's graph node names.

    An unregistered torchvision model's taps are its graph nodes in eval mode (the input
    excluded); its default tap, and its top, is the node that feeds its last layer with
    parameters.
    """
    if name in BACKBONES:
        return BACKBONES[name]
    if name not in BACKBONE_CHOICES:
        raise ValueError(
            f"unknown backbone {name!r}{did_you_mean(name, BACKBONE_CHOICES)}; registered: {', '.join(BACKBONES)}; "
            f"or any torchvision classification model ({len(BACKBONE_CHOICES) - len(BACKBONES)}: "
            f"torchvision.models.list_models() lists them)"
        )
    model = meta_model(name)
    with warnings.catch_warnings():  # "eval nodes are a subsequence of train nodes": eval is what runs
        warnings.simplefilter("ignore", UserWarning)
        _, nodes = get_graph_node_names(model)
    return Backbone(name, {node: node for node in nodes[1:]}, default_taps=(_classifier_input(model, nodes),))


def _classifier_input(model: nn.Module, nodes: list[str]) -> str:
    """The node feeding the last layer with parameters: the features the model classifies."""
    for index in range(len(nodes) - 1, 0, -1):
        try:
            module = model.get_submodule(nodes[index])
        except AttributeError:  # a function node (flatten, getitem), not a module
            continue
        if next(module.parameters(recurse=False), None) is not None:
            return nodes[index - 1]
    return nodes[-1]


def tap_extractor(model: nn.Module, backbone: str, taps: list[str]) -> nn.Module:
    """``model`` cut at ``taps``: a module returning ``{tap: activation}`` in one forward pass.

    torchvision's FX feature extractor keeps only the layers (and parameters) the taps
    need, so a ``pool3`` extraction never runs VGG16's fully connected layers.
    """
    entry = get_backbone(backbone)
    return create_feature_extractor(model, return_nodes={entry.node(tap): tap for tap in taps}).eval()


@dataclass(frozen=True)
class TapInfo:
    """A tap, its graph node and its output shape (no batch dimension)."""

    name: str
    node: str
    shape: tuple[int, ...]


def list_taps(backbone: str, image_size: int = 224) -> list[TapInfo]:
    """The taps of ``backbone`` and their output shapes for ``image_size`` square inputs.

    Runs the model on the ``meta`` device: shapes only, no weights, no download, no compute.
    Graph nodes whose output is not a tensor (sizes, tuples) are left out.
    """
    entry = get_backbone(backbone)
    extractor = tap_extractor(meta_model(backbone), backbone, list(entry.taps))
    try:
        outputs = extractor(torch.zeros(1, 3, image_size, image_size, device="meta"))
    except RuntimeError as error:  # e.g. an input too small for the model's pooling layers
        raise ValueError(f"{backbone} cannot run on {image_size} x {image_size} inputs: "
                         f"{str(error).splitlines()[0]}") from error
    return [TapInfo(tap, node, tuple(outputs[tap].shape[1:]))
            for tap, node in entry.taps.items() if isinstance(outputs[tap], torch.Tensor)]


def top_block(model: nn.Module, backbone: str, tap: str) -> nn.Module:
    """The layers of ``model`` between tap ``tap`` and the backbone's ``top``, as a module.

    It maps the tap's activation to top's (VGG16 after ``pool4``: conv5_1 .. pool5; ResNet50
    after ``layer3``: ``layer4``), so fine-tuning the top block trains on cached activation
    maps without running the lower layers again. The module shares ``model``'s parameters
    and is returned in eval mode, like ``tap_extractor``.

    It is cut from the FX graph: the nodes that ``top`` depends on, back to the tap, are
    copied into a new graph whose input replaces the tap. A ``top`` that also depends on
    the image other than through the tap (a skip connection from before it) is refused,
    since the cached activation alone cannot compute it.
    """
    entry = get_backbone(backbone)
    entry.node(tap)  # an unknown tap fails here, with the valid names
    if entry.depth(tap) >= entry.depth(entry.top):
        earlier = list(entry.taps)[max(entry.depth(entry.top) - 1, 0)]
        raise ValueError(f"nothing to fine-tune after tap {tap!r} of {backbone}: its top block ends at "
                         f"{entry.top!r}; pick an earlier tap such as {earlier!r}")
    traced = create_feature_extractor(model, {entry.node(tap): "tap", entry.node(entry.top): "top"}).eval()
    ends = next(node for node in traced.graph.nodes if node.op == "output").args[0]
    start, end = ends["tap"], ends["top"]

    needed, pending = set(), [end]  # end's ancestors, back to the tap
    while pending:
        node = pending.pop()
        if node in needed or node is start:
            continue
        if node.op == "placeholder":
            raise ValueError(f"top {entry.top!r} of {backbone} depends on the image other than through tap "
                             f"{tap!r} (a connection that skips it), so it cannot be computed from that tap's "
                             f"activations; pick a tap that every path to {entry.top!r} passes through")
        needed.add(node)
        pending.extend(node.all_input_nodes)

    graph = torch.fx.Graph()
    copies = {start: graph.placeholder("x")}
    for node in traced.graph.nodes:  # graph order: inputs are copied before their users
        if node in needed:
            copies[node] = graph.node_copy(node, lambda arg: copies[arg])
    graph.output(copies[end])
    return torch.fx.GraphModule(traced, graph).eval()
