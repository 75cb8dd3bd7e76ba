"""The backbone registry: torchvision classifiers with readable names for the depths
("taps") worth reading, shallow to deep (VGG16's ``pool3`` is graph node ``features.16``),
and the families of models (``FAMILIES``): where a family's stages and blocks are, its
final norm and pool, its class token, whether it is built for one input size.

Adding a model is adding an entry here; adding a family is one ``Family``; nothing else
in the project branches on model names. It is plain data, without torch, so that a
config's backbones and taps are checked the moment it loads; ``features.backbones``
builds and cuts the models, and makes entries for the other models from their graphs
and their family.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SettingError
from .names import did_you_mean

__all__ = ["Backbone", "BACKBONES", "FAMILIES", "Family", "family_of"]

_SHOWN = 12  # tap names listed in an error message before "..."


@dataclass(frozen=True)
class Backbone:
    """A model and its taps.

    Parameters
    ----------
    name : str
        The torchvision model name (``torchvision.models.get_model``).
    taps : dict of str to str
        Tap name -> graph node name (``get_graph_node_names``), shallow to deep.
    default_taps : tuple of str
        The taps extracted when the config names none for this backbone.
    top : str, default=""
        The end of the last block: the tap that feeds a new classifier head when the
        top block is fine-tuned (``top_block``). ``""`` means the deepest default tap.
    curated : tuple of str, default=()
        The taps worth using (stage and block outputs, the final norm and pool), shallow
        to deep, as ``taps`` lists them by default; ``()``: the names of ``taps``.
    family : str, default=""
        The ``Family`` the model belongs to, for messages and the docs' table.
    """

    name: str
    taps: dict[str, str]
    default_taps: tuple[str, ...]
    top: str = ""
    curated: tuple[str, ...] = ()
    family: str = ""

    def __post_init__(self):
        if not self.top:
            object.__setattr__(self, "top", self.default_taps[-1])  # frozen: set once, here
        if not self.curated:
            object.__setattr__(self, "curated", tuple(self.taps))

    def node(self, tap: str) -> str:
        """The graph node of a tap name, or a clear error listing the valid ones."""
        if tap not in self.taps:
            shown = ", ".join(self.curated[:_SHOWN])
            more = (f", ... ({len(self.taps)} in all, module and graph node names included; "
                    f"`python -m pipeline taps {self.name}` lists them with their shapes)"
                    ) if len(self.taps) > len(self.curated[:_SHOWN]) else ""
            raise SettingError(f"unknown tap {tap!r} for backbone {self.name!r}{did_you_mean(tap, self.taps)}; "
                               f"valid taps: {shown}{more}")
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
            top="pool5",
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
            top="layer4",
        ),
    )
}
"""Backbones with readable tap names."""


@dataclass(frozen=True)
class Family:
    """Where the useful taps of a family of models are, and what its models need.

    Parameters
    ----------
    name : str
        As the docs' backbone table names it.
    prefixes : tuple of str
        Model names that start with one of these belong to the family (the first
        family that matches wins).
    stages : tuple of str
        The stage and block outputs, shallow to deep: module names, ``"path.*"`` for
        every child of module ``path``, ``"path.*:Type"`` for its children of one class,
        or ``"@feature_info"`` for the modules of timm's ``feature_info``.
    ends : tuple of str
        The final norm and pool (module or graph node names), kept where a model has them.
    final : str
        The deepest default tap when it is not the last stage (a final norm); kept only
        where a model has it.
    class_token : str
        The model attribute holding the class token (``class_token``, ``cls_token``);
        the class token is the first prefix token where the attribute is a tensor.
    sized : bool
        The model is built for one input size (position embeddings): another size
        rebuilds it with its position embeddings interpolated.
    preprocessing : str
        Where the images' preprocessing comes from, for the docs.
    spread : bool
        The default taps are a spread of the stages' depths; else the node that feeds the
        classifier (models whose top-level modules are no stages).
    """

    name: str
    prefixes: tuple[str, ...]
    stages: tuple[str, ...]
    ends: tuple[str, ...] = ()
    final: str = ""
    class_token: str = ""
    sized: bool = False
    preprocessing: str = "the torchvision weights' transforms"
    spread: bool = True


_TIMM = "the timm model's pretrained config (mean, std, interpolation, crop_pct)"

FAMILIES: tuple[Family, ...] = (
    Family("VGG", ("vgg",), ("features.*:MaxPool2d",), ("classifier.1", "classifier.4")),
    Family("ResNet", ("resnet", "resnext", "wide_resnet"), ("layer1", "layer2", "layer3", "layer4"),
           ("avgpool", "flatten")),
    Family("DenseNet", ("densenet",), ("features.denseblock1", "features.denseblock2", "features.denseblock3",
                                       "features.denseblock4"), ("features.norm5", "relu", "flatten"), final="relu"),
    Family("EfficientNet", ("efficientnet",), ("features.*",), ("avgpool", "flatten")),
    Family("MobileNet", ("mobilenet",), ("features.*",), ("avgpool", "flatten")),
    Family("RegNet", ("regnet",), ("trunk_output.*",), ("avgpool", "flatten")),
    Family("ConvNeXt", ("convnext",), ("features.1", "features.3", "features.5", "features.7"),
           ("avgpool", "classifier.0", "classifier.1")),
    Family("Swin", ("swin",), ("features.1", "features.3", "features.5", "features.7"), ("norm", "flatten"),
           final="norm"),
    Family("ViT", ("vit_",), ("encoder.layers.*",), ("encoder.ln",), final="encoder.ln", class_token="class_token",
           sized=True),
    Family("timm ViT", ("timm/vit_", "timm/deit", "timm/eva"), ("@feature_info",), ("norm", "fc_norm"),
           final="norm", class_token="cls_token", sized=True, preprocessing=_TIMM),
    Family("timm", ("timm/",), ("@feature_info",), ("global_pool", "head.global_pool", "head.flatten"),
           preprocessing=_TIMM),
)
"""Families of models, checked in order (``family_of``)."""

_OTHERS = Family("other", ("",), ("*",), spread=False)  # any other model: its top-level modules


def family_of(name: str) -> Family:
    """The first family whose prefixes ``name`` starts with; other models' stages are their top-level modules."""
    return next((family for family in FAMILIES if name.startswith(family.prefixes)), _OTHERS)
