"""Frozen classifiers (torchvision's, and timm's with the ``timm`` extra) cut at named depths ("taps").

A tap is a registry name (``pool3``), a module's name (``layer3``, ``features.5``,
``encoder.layers.encoder_layer_5``: that module's output) or a graph node's name
(``torchvision.models.feature_extraction.get_graph_node_names``). Each model's family
(``features.registry.FAMILIES``) says which taps are worth using (``Backbone.curated``)
and which are its defaults, a spread of depths. Every tap has a layout
(``features.layouts``), read from a shape probe on the ``meta`` device: no weights, no
compute. Where models come from (torchvision, timm) is a ``Library``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch
import torchvision
from torch import nn
from torchvision.models import get_model, list_models
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names
from torchvision.models.vision_transformer import interpolate_embeddings

from .errors import SettingError
from .layouts import PROBE_SIZES, Layout, infer_layout, inherit_layout
from .names import did_you_mean
from .pooling import check_pooling, pool, pooling_refusal
from .registry import BACKBONES, Backbone, Family, family_of

__all__ = [
    "Backbone",
    "BACKBONES",
    "BACKBONE_CHOICES",
    "Library",
    "TapInfo",
    "check_taps",
    "get_backbone",
    "library_of",
    "list_taps",
    "meta_model",
    "resize_inputs",
    "tap_extractor",
    "tap_layouts",
    "top_block",
]

BACKBONE_CHOICES = (*BACKBONES, *sorted(set(list_models(module=torchvision.models)) - set(BACKBONES)))
"""Every usable torchvision backbone name: the registry's first, then torchvision's classification
models (and, with the ``timm`` extra, any ``timm/<name>``)."""

TIMM_PREFIX = "timm/"


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


def _resize_vit(model: nn.Module, name: str, image_size: int) -> nn.Module:
    """A torchvision ViT for ``image_size`` inputs, its position embeddings interpolated (bicubic)."""
    if model.image_size == image_size:
        return model
    _check_patches(name, image_size, model.patch_size)
    state = interpolate_embeddings(image_size, model.patch_size, model.state_dict())
    with torch.device("meta"):
        resized = get_model(name, weights=None, image_size=image_size)
    resized.load_state_dict(state, assign=True)
    return resized.eval().requires_grad_(model.conv_proj.weight.requires_grad)


def _check_patches(name: str, image_size: int, patch_size: int) -> None:
    if image_size % patch_size:
        raise ValueError(f"{name} takes images whose side is a multiple of its patch size {patch_size} (e.g. "
                         f"{4 * patch_size}, {6 * patch_size} or {224 // patch_size * patch_size}); "
                         f"features.image_size = {image_size} is not")


TORCHVISION = Library(
    build=lambda name, **kwargs: get_model(name, weights=None, **kwargs),
    graph_node_names=get_graph_node_names,
    feature_extractor=create_feature_extractor,
    size_argument="image_size",
    resize=_resize_vit,
)


def library_of(name: str) -> Library:
    """The library a backbone name comes from: timm for ``timm/...`` names, else torchvision."""
    if name.startswith(TIMM_PREFIX):
        from .timm_backbones import TIMM

        return TIMM
    return TORCHVISION


def meta_model(name: str, image_size: int | None = None) -> nn.Module:
    """The model's structure without memory or initialisation cost (parameters on ``meta``);
    a sized family's (ViT) built for ``image_size`` inputs when given."""
    library = library_of(name)
    kwargs = {library.size_argument: image_size} if image_size and family_of(name).sized else {}
    try:
        with torch.device("meta"):
            return library.build(name, **kwargs).eval()
    except NotImplementedError:  # a builder that computes with tensors (RegNet): build, then drop the data
        return library.build(name, **kwargs).to("meta").eval()


def resize_inputs(model: nn.Module, name: str, image_size: int) -> nn.Module:
    """``model`` ready for ``image_size`` inputs: a sized family's (ViT) position embeddings
    interpolated to the new grid; any other model as it is."""
    return library_of(name).resize(model, name, image_size) if family_of(name).sized else model


def _check_name(name: str) -> None:
    if name.startswith(TIMM_PREFIX):
        from .timm_backbones import check_timm_name

        check_timm_name(name)
    elif name not in BACKBONE_CHOICES:
        raise ValueError(
            f"unknown backbone {name!r}{did_you_mean(name, BACKBONE_CHOICES)}; registered: {', '.join(BACKBONES)}; "
            f"or any torchvision classification model ({len(BACKBONE_CHOICES) - len(BACKBONES)}: "
            f"torchvision.models.list_models() lists them); or timm/<name> (pip install \"cnn-codes[timm]\")"
        )


def _graph_nodes(name: str, model: nn.Module) -> list[str]:
    """The model's graph nodes in eval mode, in execution order, the input left out."""
    with warnings.catch_warnings():  # "eval nodes are a subsequence of train nodes": eval is what runs
        warnings.simplefilter("ignore")
        _, nodes = library_of(name).graph_node_names(model)
    return nodes[1:]


def _last_nodes(nodes: list[str]) -> dict[str, str]:
    """Every module and node name -> the graph node giving its output (a module's: its last node)."""
    last = {}
    for node in nodes:
        parts = node.split(".")
        for end in range(1, len(parts) + 1):
            last[".".join(parts[:end])] = node  # later nodes overwrite: the module's last one
    return last


def _stage_taps(model: nn.Module, family: Family, library: Library, known) -> list[str]:
    """The family's stage and block modules that ``model`` has (see ``Family.stages``)."""
    found = []
    for spec in family.stages:
        if spec == "@feature_info":
            found += library.feature_info(model)
            continue
        path, star, kind = spec.partition("*")
        if not star:
            found.append(spec)
            continue
        parent = model.get_submodule(path.rstrip(".")) if path else model
        kind = kind.lstrip(":")
        found += [f"{path}{child}" for child, module in parent.named_children()
                  if not kind or type(module).__name__ == kind]
    return [tap for tap in found if tap in known]


def _spread(stages: list[str], final: str) -> tuple[str, ...]:
    """Three depths, early to late: the stages at one half and three quarters, and the last
    (or the family's final tap)."""
    if not stages:
        return (final,) if final else ()
    picks = [stages[math.ceil(len(stages) * fraction) - 1] for fraction in (0.5, 0.75)]
    return tuple(dict.fromkeys([*picks, final or stages[-1]]))


def _classifier_input(model: nn.Module, nodes: list[str], classifier: str | None) -> str:
    """The node feeding the classifier (where the library names it; else the last layer with
    parameters): the features the model classifies."""
    if classifier:
        return nodes[next(index for index, node in enumerate(nodes)
                          if node == classifier or node.startswith(f"{classifier}.")) - 1]
    for index in range(len(nodes) - 1, 0, -1):
        try:
            module = model.get_submodule(nodes[index])
        except AttributeError:  # a function node (flatten, getitem), not a module
            continue
        if next(module.parameters(recurse=False), None) is not None:
            return nodes[index - 1]
    return nodes[-1]


@lru_cache(maxsize=None)
def get_backbone(name: str) -> Backbone:
    """The entry of ``name``: its taps (registry names, module names, graph nodes, each
    mapped to the graph node giving its output, shallow to deep), curated and default taps.

    A registered backbone keeps its readable names and defaults; any other model's curated
    taps are its family's stages, final norm and pool and the node feeding its last layer
    (its ``top``), its defaults a spread of its stages.
    """
    _check_name(name)
    model, library, family = meta_model(name), library_of(name), family_of(name)
    nodes = _graph_nodes(name, model)
    last = _last_nodes(nodes)
    depth = {node: index for index, node in enumerate(nodes)}
    registered = BACKBONES.get(name)
    named = {tap: last[node] for tap, node in (registered.taps if registered else {}).items()}
    taps = dict(sorted({**named, **{key: last[key] for key in last if key not in named}}.items(),
                       key=lambda item: depth[item[1]]))
    stages = _stage_taps(model, family, library, last)
    top = _classifier_input(model, nodes, library.classifier(model))
    final = family.final if family.final in last else ""
    curated, seen = [], set()
    for tap in sorted([*named, *stages, *(end for end in family.ends if end in last), top],
                      key=lambda tap: depth[taps[tap]]):
        if taps[tap] not in seen:
            seen.add(taps[tap])
            curated.append(tap)
    if registered:
        return Backbone(name, taps, registered.default_taps, registered.top, tuple(curated), family.name)
    defaults = _spread(stages, final) if family.spread else ()
    return Backbone(name, taps, defaults or (top,), top, tuple(curated), family.name)


@lru_cache(maxsize=4)
def _probe(name: str, size: int | None) -> nn.Module:
    """``name`` on the ``meta`` device (built for ``size`` inputs if sized) returning every graph node."""
    model = meta_model(name, size)
    extractor = library_of(name).feature_extractor(model, _graph_nodes(name, model))
    extractor.has_class_token = _has_class_token(name, model)
    return extractor


def _has_class_token(name: str, model: nn.Module) -> bool:
    attribute = family_of(name).class_token
    return bool(attribute) and isinstance(getattr(model, attribute, None), torch.Tensor)


@lru_cache(maxsize=16)
def _shapes(name: str, size: int) -> dict[str, tuple[int, ...]]:
    """Every graph node's output shape (batch left out) at ``size`` x ``size`` inputs; tensors only.

    Cached: shape inference on the ``meta`` device still runs each layer's Python shape
    rules (DenseNet121: about a second on two cores)."""
    extractor = _probe(name, size if family_of(name).sized else None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outputs = extractor(torch.zeros(1, 3, size, size, device="meta"))
    except (RuntimeError, AssertionError, ValueError, IndexError) as error:  # too small for its pooling, ...
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{name} cannot run on {size} x {size} inputs: {message}") from error
    return {node: tuple(output.shape[1:]) for node, output in outputs.items() if isinstance(output, torch.Tensor)}


def _inputs(name: str) -> dict[str, list[str]]:
    """Each graph node -> the graph nodes it reads."""
    extractor = _probe(name, PROBE_SIZES[0] if family_of(name).sized else None)
    returned = next(node for node in extractor.graph.nodes if node.op == "output").args[0]
    qualname = {node: key for key, node in returned.items()}
    return {key: [qualname[source] for source in node.all_input_nodes if source in qualname]
            for key, node in returned.items()}


@lru_cache(maxsize=None)
def tap_layouts(name: str) -> dict[str, Layout | str]:
    """Every graph node of ``name`` -> its output's ``Layout``, or why it has none.

    From the output shapes at the two ``PROBE_SIZES`` on the ``meta`` device
    (``features.layouts.infer_layout``); token sequences have a class token where the
    family's class token attribute holds a tensor.
    """
    first, second = (_shapes(name, size) for size in PROBE_SIZES)
    class_token = _probe(name, PROBE_SIZES[0] if family_of(name).sized else None).has_class_token
    inputs = _inputs(name)
    layouts = {}
    for node in get_backbone(name).taps.values():  # graph order: a node's inputs come first
        if node in layouts:
            continue
        if node not in first:
            layouts[node] = "its output is not a tensor"
            continue
        layout = infer_layout(first[node], second[node])
        if layout == "fixed":
            layout = inherit_layout(first[node], [(first[source], layouts[source]) for source in inputs[node]
                                                  if isinstance(layouts.get(source), Layout)])
        if isinstance(layout, Layout) and layout.kind == "tokens":
            layout = Layout("tokens", layout.prefix, class_token and layout.prefix >= 1)
        layouts[node] = layout
    return layouts


@dataclass(frozen=True)
class TapInfo:
    """A tap, its graph node, its layout and its output shape at one input size.

    ``shape`` is what pooling ``none`` stores (maps channels first, tokens ``(T, D)``);
    ``output_shape`` the output as the network lays it out; ``layout`` is a string saying
    why where the tap has none (it cannot be extracted).
    """

    name: str
    node: str
    shape: tuple[int, ...]
    layout: Layout | str
    output_shape: tuple[int, ...] = ()

    def width(self, pooling: str) -> int | None:
        """Features per image of ``pooling`` (None where it does not apply)."""
        if not isinstance(self.layout, Layout) or pooling_refusal(self.layout, pooling):
            return None
        return math.prod(pool(torch.empty((1, *self.output_shape), device="meta"), pooling, self.layout).shape[1:])


def list_taps(backbone: str, image_size: int = 224, which: str | list[str] = "curated") -> list[TapInfo]:
    """The taps of ``backbone``, their layouts and output shapes for ``image_size`` square inputs.

    ``which``: ``curated`` (the taps worth using), ``all`` (every graph node), or a list
    of tap names. Runs the model on the ``meta`` device: shapes only, no weights, no
    download, no compute. Graph nodes whose output is not a tensor are left out of ``all``.
    """
    entry = get_backbone(backbone)
    if isinstance(which, str):
        names = {"curated": entry.curated, "all": list(dict.fromkeys(entry.taps.values()))}[which]
    else:
        names = which
    nodes = [entry.node(tap) for tap in names]
    if family_of(backbone).sized:
        resize_inputs(meta_model(backbone), backbone, image_size)  # a size it cannot take fails here, in words
    shapes, layouts = _shapes(backbone, image_size), tap_layouts(backbone)
    return [TapInfo(tap, node, _stored(shapes[node], layouts[node]), layouts[node], shapes[node])
            for tap, node in zip(names, nodes) if node in shapes]


def _stored(shape: tuple[int, ...], layout: Layout | str) -> tuple[int, ...]:
    return layout.stored_shape(shape) if isinstance(layout, Layout) else shape


def check_taps(backbone: str, taps: list[str], poolings: list[str], image_size: int) -> dict[str, Layout]:
    """The layout of each tap, after checking that every tap x pooling can be extracted at
    ``image_size``: a ValueError says why not (an unknown tap, a tap without a layout, a
    pooling its layout cannot take, an input size the model cannot take), before any
    CNN work. Shapes only, on the ``meta`` device."""
    entry = get_backbone(backbone)
    for pooling in poolings:
        check_pooling(pooling)
    _check_one_name_per_node(entry, taps)
    infos = {info.name: info for info in list_taps(backbone, image_size, list(dict.fromkeys(taps)))}
    layouts = {}
    for tap in taps:
        if tap not in infos:
            raise ValueError(f"tap {tap!r} of {backbone} outputs no tensor; usable taps nearby: "
                             f"{', '.join(_nearby(entry, tap))}")
        layout = infos[tap].layout
        if not isinstance(layout, Layout):
            raise ValueError(f"tap {tap!r} of {backbone} has no layout that pooling can read ({layout}); "
                             f"usable taps nearby: {', '.join(_nearby(entry, tap))}")
        for pooling in poolings:
            refusal = pooling_refusal(layout, pooling)
            if refusal:
                raise ValueError(f"tap {tap!r} of {backbone}: {refusal}")
        layouts[tap] = layout
    return layouts


def _check_one_name_per_node(entry: Backbone, taps: list[str]) -> None:
    """A curated name and its node (``layer4`` and ``layer4.2.relu_2``) are one output: asked
    for both, the extractor would return it once, under one of the names."""
    named = {}
    for tap in dict.fromkeys(taps):
        node = entry.taps.get(tap, tap)
        if node in named:
            raise SettingError(f"taps {named[node]!r} and {tap!r} of {entry.name} are the same node ({node}); "
                               f"keep one of them")
        named[node] = tap


def _nearby(entry: Backbone, tap: str, count: int = 4) -> list[str]:
    """The curated taps with a layout closest in depth to ``tap``."""
    layouts = tap_layouts(entry.name)
    usable = [name for name in entry.curated if isinstance(layouts[entry.taps[name]], Layout)]
    return sorted(usable, key=lambda name: abs(entry.depth(name) - entry.depth(tap)))[:count]


def tap_extractor(model: nn.Module, backbone: str, taps: list[str]) -> nn.Module:
    """``model`` cut at ``taps``: a module returning ``{tap: activation}`` in one forward pass.

    The FX feature extractor (torchvision's, or timm's for timm models) keeps only the
    layers (and parameters) the taps need, so a ``pool3`` extraction never runs VGG16's
    fully connected layers.
    """
    entry = get_backbone(backbone)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return library_of(backbone).feature_extractor(model, {entry.node(tap): tap for tap in taps}).eval()


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
        earlier = [name for name in entry.curated if entry.depth(name) < entry.depth(entry.top)] or list(entry.taps)
        raise ValueError(f"nothing to fine-tune after tap {tap!r} of {backbone}: its top block ends at "
                         f"{entry.top!r}; pick an earlier tap such as {earlier[-1]!r}")
    layout = tap_layouts(backbone)[entry.node(tap)]
    if not isinstance(layout, Layout) or layout.kind not in ("chw", "tokens"):
        raise ValueError(f"fine-tuning after tap {tap!r} of {backbone} is not supported: the block reads the "
                         f"tap's whole output as the network lays it out, and that tap is a {layout}, not a "
                         f"(C, H, W) map or (T, D) tokens; pick a channels-first map or token tap")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = library_of(backbone).feature_extractor(model, {entry.node(tap): "tap",
                                                                entry.node(entry.top): "top"}).eval()
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
