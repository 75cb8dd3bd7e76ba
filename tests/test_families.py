"""Every backbone family gives correct codes: each default tap's codes, through the public
API, equal an independent computation (a forward hook on the tap's module, pooled by hand on
the axes its family lays out), and ``none`` keeps maps channels first and tokens as (T, D).

Random weights, 64 px inputs (56 for a patch-14 ViT), four images; each model is built once.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from features import Layout, Recipe, Runtime, compute_codes, get_backbone
from features.sources import ImageArrays
from features.weights import build_model

IMAGES = np.random.default_rng(0).integers(0, 256, (4, 40, 48, 3), dtype=np.uint8)
RUNTIME = Runtime(device="cpu", batch_size=4, num_workers=0, progress=False)

FAMILIES = {  # a small model of each family: its layout of the default taps, and the input size
    "vgg11": ("chw", 64),
    "resnet18": ("chw", 64),
    "densenet121": ("chw", 64),
    "efficientnet_b0": ("chw", 64),
    "mobilenet_v3_small": ("chw", 64),
    "regnet_y_400mf": ("chw", 64),
    "convnext_tiny": ("chw", 64),
    "swin_t": ("hwc", 64),
    "vit_b_16": ("tokens", 64),
}
FUNCTIONS = {"relu": ("features", torch.relu)}  # a default tap that is a function node: its module, then the function


def _hooked(model, name):
    """The output of module ``name`` (or of a function node after its module) in ``model``'s next forward."""
    module_name, function = FUNCTIONS.get(name, (name, lambda output: output))
    seen = {}
    model.get_submodule(module_name).register_forward_hook(lambda module, args, output: seen.update(out=output))
    return lambda: function(seen["out"])


def _by_hand(output, kind, pooling, prefix=1):
    """Pool one module's output by hand, on the axes its family lays out."""
    if kind == "tokens":
        return {"avg": output[:, prefix:].mean(1), "cls": output[:, 0], "none": output}[pooling]
    maps = output.permute(0, 3, 1, 2) if kind == "hwc" else output
    if output.ndim == 2:  # a vector
        return output
    return {"avg": maps.mean(dim=(2, 3)), "none": maps}[pooling]


def _check_family(name, kind, size, prefix=1):
    recipe = Recipe.resolve(name, "random", seed=3, image_size=size)
    taps = list(get_backbone(name).default_taps)
    poolings = ["avg", "none", *(["cls"] if kind == "tokens" else [])]
    codes, failed = compute_codes(ImageArrays(IMAGES, np.arange(4) % 2), recipe, taps, poolings, RUNTIME)
    assert not failed

    model = build_model(recipe.weights, image_size=size)
    outputs = {tap: _hooked(model, tap) for tap in taps}
    inputs = torch.stack([recipe.transform(Image.fromarray(image)) for image in IMAGES])
    with torch.inference_mode():
        model(inputs)
    for tap in taps:
        output = outputs[tap]()
        for pooling in poolings:
            expected = _by_hand(output, kind if output.ndim > 2 else "vector", pooling, prefix).numpy()
            got = codes[tap, pooling].astype(np.float32)
            assert got.shape == expected.shape, (tap, pooling)
            tolerance = 1e-2 if pooling == "none" else 1e-5  # none is stored as float16
            scale = max(1.0, float(np.abs(expected).max()))
            np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * scale, err_msg=f"{tap}/{pooling}")
    return codes, taps


@pytest.mark.parametrize("name", FAMILIES)
def test_default_taps_give_the_codes_of_a_hook_pooled_by_hand(name):
    kind, size = FAMILIES[name]
    codes, taps = _check_family(name, kind, size)
    assert len(taps) >= 3
    for tap in taps:  # none: maps (C, H, W), tokens (T, D)
        shape = codes[tap, "none"].shape[1:]
        if kind == "tokens":
            assert shape == ((size // 16) ** 2 + 1, 768)
        elif len(shape) == 3:
            assert shape[1] == shape[2] and shape[0] == codes[tap, "avg"].shape[1]


def test_layouts_say_what_each_family_lays_out():
    swin = get_backbone("swin_t")
    from features.backbones import tap_layouts

    assert tap_layouts("swin_t")[swin.node("features.5")] == Layout("hwc")
    assert tap_layouts("convnext_tiny")[get_backbone("convnext_tiny").node("features.5")] == Layout("chw")
    assert tap_layouts("vit_b_16")[get_backbone("vit_b_16").node("encoder.ln")] == Layout("tokens", 1, True)
    assert tap_layouts("vit_b_16")["getitem_5"] == Layout("vector")
