"""The backbone registry: torchvision classifiers with readable names for the depths
("taps") worth reading, shallow to deep (VGG16's ``pool3`` is graph node ``features.16``).

Adding a model is adding an entry here; nothing else in the project branches on model
names. It is plain data, without torch, so that a config's backbones and taps are checked
the moment it loads; ``features.backbones`` builds and cuts the models, and makes entries
for unregistered torchvision models from their graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backbone", "BACKBONES"]

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
    """

    name: str
    taps: dict[str, str]
    default_taps: tuple[str, ...]
    top: str = ""

    def __post_init__(self):
        if not self.top:
            object.__setattr__(self, "top", self.default_taps[-1])  # frozen: set once, here

    def node(self, tap: str) -> str:
        """The graph node of a tap name, or a clear error listing the valid ones."""
        if tap not in self.taps:
            shown = ", ".join(list(self.taps)[:_SHOWN])
            more = (f", ... ({len(self.taps)} in all; `python -m pipeline taps {self.name}` lists them "
                    f"with their shapes)") if len(self.taps) > _SHOWN else ""
            raise ValueError(f"unknown tap {tap!r} for backbone {self.name!r}; valid taps: {shown}{more}")
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
