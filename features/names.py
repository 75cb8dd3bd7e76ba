"""The values a configuration may name, defined without torch.

A config is checked when it loads, and ``status`` or a run with nothing to do must answer
in a fraction of a second, before torch (about 3 s to import) is loaded. The modules that
act on these values import them from here.
"""

from __future__ import annotations

import difflib

__all__ = ["codes_names", "choices_hint", "did_you_mean", "DTYPES", "ON_ERROR", "PRECISIONS", "WEIGHTS_CHOICES", "WEIGHTS_FILE_SUFFIXES", "is_weights_file"]

DTYPES = ("float32", "float16")
"""Storage types of the codes (``features.dtype``, and ``features.map_dtype`` for whole maps);
float16 halves the files."""

ON_ERROR = ("skip", "fail")
"""What an unreadable image does (``data.on_error``): skipped and recorded, or stop."""

PRECISIONS = ("float32", "bfloat16", "int8")
"""Arithmetic of the network's forward pass (``features.precision``); ``int8``: calibrated
static quantization, on the CPU only (``features.quantize``)."""

WEIGHTS_CHOICES = ("imagenet", "random", "auto")
"""``imagenet``: torchvision's default ImageNet weights, an error when they cannot be had.
``random``: seeded random initialisation (mechanics and timing only, not transfer learning).
``auto``: ImageNet weights when torchvision can load them, random weights otherwise.
Besides these: a torchvision weights value name, or a state-dict file."""

WEIGHTS_FILE_SUFFIXES = (".pth", ".pt")


def is_weights_file(value: str) -> bool:
    """Whether a ``features.weights`` value names a file rather than weights by name."""
    return value.endswith(WEIGHTS_FILE_SUFFIXES) or "/" in value


SHOWN_CHOICES = 8
"""Valid names listed in an error before "(N in all)": a model has hundreds of graph nodes."""


def did_you_mean(value, valid) -> str:
    """`` (did you mean 'a' or 'b'?)`` for the names of ``valid`` closest to ``value``, or ``""``.

    The one helper of every "unknown name" message (config keys and choices, backbones
    from the command line or from Python), so that they all suggest alike.
    """
    close = difflib.get_close_matches(str(value), [str(name) for name in valid], n=3)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


def choices_hint(valid, where: str = "") -> str:
    """The first few of ``valid``, and how many there are in all (``where`` says what lists them all)."""
    valid = [str(name) for name in valid]
    shown = ", ".join(valid[:SHOWN_CHOICES])
    if len(valid) <= SHOWN_CHOICES:
        return shown
    return f"{shown}, ... ({len(valid)} in all{'; ' + where if where else ''})"


def codes_names(taps, poolings) -> list[str]:
    """``"tap/pooling"`` of every tap and pooling, taps outer: the tables of codes a config asks
    for, as ``features.json``, ``classifiers.benchmark(codes=...)`` and the runner's stamps name them."""
    return [f"{tap}/{pooling}" for tap in taps for pooling in poolings]
