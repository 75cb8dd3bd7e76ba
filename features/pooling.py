"""Pooling of a tap's output to one row of numbers per image, on the device, along the
axes its layout (``features.layouts``) names.

On maps: ``avg`` and ``max`` pool each channel over the whole map, ``avgmax``
concatenates both, ``grid<k>`` averages the map down to ``k x k`` cells and flattens it
(channel-major), which keeps a coarse layout of where things are. On token sequences the
same poolings read the patch tokens only (prefix tokens excluded; ``grid<k>`` lays them
back on their grid), and ``cls`` is the class token, ``cls+avg`` the class token and the
mean of the patch tokens concatenated (DINOv2's linear evaluation). ``none`` keeps maps,
channels first ``(C, H, W)``, and tokens ``(T, D)``. Vector taps (``fc6``, ``pool``) pass
through every pooling but the class token ones.

torch is imported where an output is pooled, not above: a config's poolings are checked
(``check_pooling``) before torch loads.
"""

from __future__ import annotations

import re

from .errors import SettingError
from .layouts import Layout

__all__ = ["MAP", "POOLINGS", "POOLING_CHOICES", "CLASS_TOKEN_POOLINGS", "check_pooling", "pooling_refusal", "pool"]

MAP = "none"
"""The pooling that keeps a tap's whole output: maps as ``(C, H, W)``, tokens as ``(T, D)``."""

POOLINGS = {
    "avg": lambda maps: maps.mean(dim=(2, 3)),
    "max": lambda maps: maps.amax(dim=(2, 3)),
    "avgmax": lambda maps: _concatenate(maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))),
}
"""Fixed poolings of a ``(batch, channels, height, width)`` map to ``(batch, features)``."""

CLASS_TOKEN_POOLINGS = {
    "cls": lambda tokens, patches: tokens[:, 0],
    "cls+avg": lambda tokens, patches: _concatenate(tokens[:, 0], patches.mean(dim=1)),
}
"""Poolings of a token sequence with a class token: ``(batch, T, D)`` to ``(batch, features)``."""

_TOKEN_POOLINGS = {
    "avg": lambda patches: patches.mean(dim=1),
    "max": lambda patches: patches.amax(dim=1),
    "avgmax": lambda patches: _concatenate(patches.mean(dim=1), patches.amax(dim=1)),
}

_GRID = re.compile(r"grid([1-9][0-9]?)")
POOLING_CHOICES = (*POOLINGS, "grid<k>", *CLASS_TOKEN_POOLINGS, MAP)
"""The valid pooling names, for messages (``grid<k>``: k = 1..99, e.g. ``grid2``)."""


def check_pooling(name: str) -> str:
    """``name`` if it is a valid pooling, else a ValueError listing the choices."""
    if name not in POOLINGS and name not in CLASS_TOKEN_POOLINGS and name != MAP and not _GRID.fullmatch(name):
        raise SettingError(f"unknown pooling {name!r}; valid: {', '.join(POOLING_CHOICES)} (e.g. grid2)")
    return name


def pooling_refusal(layout: Layout, pooling: str) -> str:
    """Why ``pooling`` cannot pool an output of ``layout`` ("" when it can)."""
    if pooling in CLASS_TOKEN_POOLINGS and not layout.class_token:
        return (f"pooling {pooling!r} takes the class token, and this tap's output, a {layout}, has none; "
                f"use avg (or a token tap of a model with a class token)")
    return ""


def _concatenate(*rows):
    import torch

    return torch.cat(rows, dim=1)


def _grid_of(patches):
    """Patch tokens ``(batch, n * n, D)`` laid back on their square grid: ``(batch, D, n, n)``."""
    side = round(patches.shape[1] ** 0.5)
    if side * side != patches.shape[1]:
        raise ValueError(f"{patches.shape[1]} patch tokens do not make a square grid")
    return patches.transpose(1, 2).unflatten(2, (side, side))


def pool(activation, pooling: str, layout: Layout):
    """One tap's output pooled along the axes ``layout`` names.

    Parameters
    ----------
    activation : Tensor, (batch, *shape)
        ``shape`` is ``(C, H, W)``, ``(H, W, C)``, ``(T, D)`` or ``(D,)`` as ``layout`` says.
    pooling : str
    layout : Layout

    Returns
    -------
    Tensor, (batch, n_features); with ``none``, maps ``(batch, C, H, W)`` and tokens
    ``(batch, T, D)``.
    """
    refusal = pooling_refusal(layout, check_pooling(pooling))
    if refusal:
        raise SettingError(refusal)
    if layout.kind == "vector":
        return activation
    if layout.kind == "hwc":
        activation = activation.permute(0, 3, 1, 2)
    if pooling == MAP:
        return activation
    grid = _GRID.fullmatch(pooling)
    if layout.kind == "tokens":
        patches = activation[:, layout.prefix:]
        if pooling in CLASS_TOKEN_POOLINGS:
            return CLASS_TOKEN_POOLINGS[pooling](activation, patches)
        if not grid:
            return _TOKEN_POOLINGS[pooling](patches)
        activation = _grid_of(patches)
    if grid:
        from torch.nn import functional

        return functional.adaptive_avg_pool2d(activation, int(grid.group(1))).flatten(1)
    return POOLINGS[pooling](activation)
