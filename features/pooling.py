"""Pooling of a tap's output to one row of numbers per image, on the device.

``avg`` and ``max`` pool each channel over the whole map, ``avgmax`` concatenates both,
``grid<k>`` averages the map down to ``k x k`` cells and flattens it (channel-major), which
keeps a coarse layout of where things are. Vector taps (``fc6``, ``pool``) pass through.

torch is imported where a map is pooled, not above: a config's poolings are checked
(``check_pooling``) before torch loads.
"""

from __future__ import annotations

import re

__all__ = ["MAP", "POOLINGS", "POOLING_CHOICES", "check_pooling", "pool"]

MAP = "none"
"""The pooling that keeps a tap's spatial map as it is."""

POOLINGS = {
    "avg": lambda maps: maps.mean(dim=(2, 3)),
    "max": lambda maps: maps.amax(dim=(2, 3)),
    "avgmax": lambda maps: _concatenate(maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))),
}
"""Fixed poolings of a ``(batch, channels, height, width)`` map to ``(batch, features)``."""

_GRID = re.compile(r"grid([1-9][0-9]?)")
POOLING_CHOICES = (*POOLINGS, "grid<k>", MAP)
"""The valid pooling names, for messages (``grid<k>``: k = 1..99, e.g. ``grid2``)."""


def check_pooling(name: str) -> str:
    """``name`` if it is a valid pooling, else a ValueError listing the choices."""
    if name not in POOLINGS and name != MAP and not _GRID.fullmatch(name):
        raise ValueError(f"unknown pooling {name!r}; valid: {', '.join(POOLING_CHOICES)} (e.g. grid2)")
    return name


def _concatenate(*rows):
    import torch

    return torch.cat(rows, dim=1)


def pool(activation, pooling: str):
    """``(batch, n_features)`` rows from a tap's ``(batch, C)`` or ``(batch, C, H, W)`` output;
    with ``none`` a map stays ``(batch, C, H, W)``."""
    if activation.ndim == 2 or pooling == MAP and activation.ndim == 4:
        return activation
    if activation.ndim != 4:
        raise ValueError(
            f"a tap output of shape {tuple(activation.shape[1:])} cannot be pooled; only "
            f"(C,) vectors and (C, H, W) maps can (pick another tap)"
        )
    grid = _GRID.fullmatch(check_pooling(pooling))
    if grid:
        from torch.nn import functional

        return functional.adaptive_avg_pool2d(activation, int(grid.group(1))).flatten(1)
    return POOLINGS[pooling](activation)
