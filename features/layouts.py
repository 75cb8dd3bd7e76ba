"""What a tap's output is laid out as, established from its shapes at two input sizes.

A tap's output (batch dimension left out) is one of:

- ``chw``: a map, channels first, ``(C, H, W)`` (convolutional networks);
- ``hwc``: a map, channels last, ``(H, W, C)`` (Swin's stages, ConvNeXt's block internals);
- ``tokens``: a sequence ``(T, D)``: ``prefix`` tokens (class, distillation, register
  tokens) then the patch tokens of the image's grid, row by row (ViTs);
- ``vector``: ``(D,)`` (a pooled or fully connected layer).

Pooling reads only the axes a layout names, and ``none`` stores maps channels first and
tokens as ``(T, D)``: a Swin stage pooled over its width and channels, a number that looks
like a result, cannot happen. The layout is not guessed from one shape (a 7 x 7 x 768 map
could be either way round) but read from how the shapes change between two input sizes:
the spatial axes grow with the input, channels do not, and a token count ``T = prefix +
(size / stride)^2`` gives both the stride and the prefix. A map whose size does not change
(after an adaptive pooling) takes the layout of the map it was computed from. Anything else
has no layout, and is refused as a tap before any CNN work.

Plain Python without torch, so that a layout travels in messages and listings freely.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Layout", "PROBE_SIZES", "infer_layout", "inherit_layout"]

PROBE_SIZES = (224, 448)
"""The square input sizes of the shape probe: multiples of every common stride and patch size."""


@dataclass(frozen=True)
class Layout:
    """How a tap's output is laid out (batch dimension left out).

    Parameters
    ----------
    kind : {"chw", "hwc", "tokens", "vector"}
    prefix : int
        Tokens before the patch tokens (``tokens`` only).
    class_token : bool
        The first prefix token is a class token (``tokens`` only).
    """

    kind: str
    prefix: int = 0
    class_token: bool = False

    @property
    def is_map(self) -> bool:
        return self.kind in ("chw", "hwc")

    def __str__(self) -> str:
        if self.kind == "tokens":
            others = self.prefix - self.class_token
            prefix = [*(["class token"] if self.class_token else []), *([f"{others} other prefix"] if others else [])]
            return f"tokens (T, D): {' + '.join(prefix) or 'no prefix'}, then patches"
        return {"chw": "map (C, H, W)", "hwc": "map (H, W, C)", "vector": "vector (D,)"}[self.kind]

    def stored_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape ``none`` stores for an output of ``shape``: maps channels first."""
        return (shape[2], shape[0], shape[1]) if self.kind == "hwc" else tuple(shape)


def infer_layout(first: tuple[int, ...], second: tuple[int, ...], sizes=PROBE_SIZES) -> Layout | str:
    """The layout of an output of shape ``first`` at input size ``sizes[0]`` and ``second`` at
    ``sizes[1]`` (square inputs, batch left out), or why it has none (a string).

    A 3-D output whose shape does not change returns ``"fixed"``: its layout is inherited
    (``inherit_layout``).
    """
    grows = [axis for axis, (a, b) in enumerate(zip(first, second)) if a != b]
    if len(first) == 1:
        return Layout("vector")
    if len(first) == 3:
        if grows == [1, 2]:
            return Layout("chw")
        if grows == [0, 1]:
            return Layout("hwc")
        return "fixed" if not grows else f"its axes {grows} grow with the input, which is no (C, H, W) or (H, W, C) map"
    if len(first) == 2 and grows == [0]:
        area = sizes[1] ** 2 - sizes[0] ** 2
        stride_squared, remainder = divmod(area, second[0] - first[0])
        prefix = first[0] - sizes[0] ** 2 // stride_squared if stride_squared else -1
        if remainder or prefix < 0 or round(stride_squared ** 0.5) ** 2 != stride_squared:
            return f"its length ({first[0]} at {sizes[0]} px, {second[0]} at {sizes[1]} px) is no square grid of tokens"
        return Layout("tokens", prefix)
    if len(first) == 2 and grows == [1]:
        return "it is a (D, T) sequence, channels first; take the (T, D) tap after it"
    return f"its shape {first} is no map, token sequence or vector" if grows or len(first) != 2 \
        else f"its shape {first} does not change with the input size"


def inherit_layout(shape: tuple[int, ...], inputs: list[tuple[tuple[int, ...], Layout]]) -> Layout | str:
    """The layout of a fixed-size 3-D output of ``shape`` (an adaptive pooling's) from the
    layouts of the maps it is computed from (``(shape, layout)`` of each): the one whose
    channels it keeps."""
    fits = {layout for source, layout in inputs
            if layout.kind == "chw" and source[0] == shape[0] or layout.kind == "hwc" and source[2] == shape[2]}
    if len(fits) == 1:
        return fits.pop()
    return "its shape does not change with the input size, and the map it comes from does not tell its channels"
