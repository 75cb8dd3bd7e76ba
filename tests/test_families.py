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


TIMM_FAMILIES = {  # timm's ResNet, ConvNeXt and a DINOv2 ViT with 4 register tokens: 5 prefix tokens
    "timm/resnet18": ("chw", 64, 0),
    "timm/convnext_atto": ("chw", 64, 0),
    "timm/vit_small_patch14_reg4_dinov2.lvd142m": ("tokens", 56, 5),
}


@pytest.mark.parametrize("name", TIMM_FAMILIES)
def test_timm_default_taps_give_the_codes_of_a_hook_pooled_by_hand(name):
    pytest.importorskip("timm")
    kind, size, prefix = TIMM_FAMILIES[name]
    codes, taps = _check_family(name, kind, size, prefix)
    if kind == "tokens":
        assert taps[-1] == "norm" and codes["norm", "none"].shape[1:] == (prefix + (size // 14) ** 2, 384)


def test_layouts_say_what_each_family_lays_out():
    from features.backbones import tap_layouts

    swin = get_backbone("swin_t")
    assert tap_layouts("swin_t")[swin.node("features.5")] == Layout("hwc")
    assert tap_layouts("convnext_tiny")[get_backbone("convnext_tiny").node("features.5")] == Layout("chw")
    assert tap_layouts("vit_b_16")[get_backbone("vit_b_16").node("encoder.ln")] == Layout("tokens", 1, True)
    assert tap_layouts("vit_b_16")["getitem_5"] == Layout("vector")
    assert tap_layouts("swin_t")["avgpool"] == Layout("chw")  # a 1 x 1 map after a permute: inherited


@pytest.fixture
def no_cnn(monkeypatch):
    """Extraction that fails the test if it builds a model."""
    import features.extraction

    def refuse(*args, **kwargs):
        raise AssertionError("a refused request must not build the model")

    monkeypatch.setattr(features.extraction, "build_tap_extractor", refuse)


@pytest.mark.parametrize("backbone, taps, pooling, image_size, message", [
    ("resnet18", ["layer3"], "cls", 64, "tap 'layer3' of resnet18: pooling 'cls' takes the class token, and this "
                                        r"tap's output, a map \(C, H, W\), has none"),
    ("swin_t", ["features.5", "flatten"], "cls+avg", 64, "pooling 'cls\\+avg' takes the class token"),
    ("vit_b_16", ["reshape"], "avg", 64, r"tap 'reshape' of vit_b_16 has no layout that pooling can read \(it is a "
                                         r"\(D, T\) sequence.*usable taps nearby: "),
    ("vit_b_16", ["encoder.ln"], "cls", 100, "vit_b_16 takes images whose side is a multiple of its patch size 16"),
    ("vgg11", ["features.20"], "avg", 8, "vgg11 cannot run on 8 x 8 inputs"),
    ("swin_t", ["features.9"], "avg", 64, "unknown tap 'features.9' for backbone 'swin_t'; valid taps: features.1"),
    ("resnet18", ["layer4", "pool", "layer4.1.relu_1"], "avg", 64,
     r"taps 'layer4' and 'layer4.1.relu_1' of resnet18 are the same node \(layer4.1.relu_1\); keep one of them"),
])
def test_bad_taps_poolings_and_sizes_are_refused_before_any_cnn_work(no_cnn, tmp_path, backbone, taps, pooling,
                                                                     image_size, message):
    from features import extract

    with pytest.raises(ValueError, match=message):
        extract(ImageArrays(IMAGES, np.arange(4) % 2), backbone, taps, [pooling], weights="random",
                image_size=image_size, cache_dir=tmp_path / "cache", device="cpu", num_workers=0)
    assert not list((tmp_path / "cache").glob("*.h5"))  # no store left behind


def test_a_vit_at_a_size_it_cannot_take_is_one_line_from_the_config(cli, write_config, image_folder, tmp_path):
    config = write_config(f'root = "{image_folder}"')
    code, _, err = cli("extract", "-c", config, "--set", 'features.backbones=["vit_b_16"]',
                       "--set", "features.image_size=100")
    assert code == 2 and err.count("\n") == 1 and "features.image_size: vit_b_16 takes images whose side" in err
    code, _, err = cli("extract", "-c", config, "--set", 'features.backbones=["swin_t"]',
                       "--set", 'features.pooling=["cls"]')
    assert code == 2 and "features.taps.swin_t" in err and "pooling 'cls' takes the class token" in err
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.h5"))


def test_taps_lists_the_useful_taps_with_layout_shape_and_widths(cli):
    code, out, _ = cli("taps", "swin_t", "--image-size", "64")
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line and not line.startswith("*")}
    assert code == 0 and list(rows)[:4] == ["features.1", "features.3", "features.5", "features.7"]
    assert "map (H, W, C)  4 x 4 x 384      384  768" in rows["features.5"] and rows["features.5"].endswith("384 x 4 x 4")
    assert "features.5 *" in out and "norm *" in out  # default taps
    code, out, _ = cli("taps", "vit_b_16", "--image-size", "64")
    assert "tokens (T, D): class token, then patches  17 x 768" in out
    code, everything, _ = cli("taps", "swin_t", "--image-size", "64", "--all")
    assert code == 0 and len(everything.splitlines()) > 150 and "features.5.1.add_1" in everything


def test_fine_tuning_after_a_channels_last_tap_is_refused_by_name():
    from features.backbones import meta_model, top_block

    with pytest.raises(ValueError, match=r"fine-tuning after tap 'features.5' of swin_t is not supported.*"
                                         r"map \(H, W, C\)"):
        top_block(meta_model("swin_t"), "swin_t", "features.5")


@pytest.fixture
def timm_offline(monkeypatch):
    """timm with nothing in its caches and no network."""
    pytest.importorskip("timm")
    from features import timm_backbones

    def no_network(name):
        raise OSError("Name or service not known")

    monkeypatch.setattr(timm_backbones, "pretrained_checkpoint", lambda name: None)
    monkeypatch.setattr(timm_backbones, "download_pretrained", no_network)


def test_timm_pretrained_weights_offline_say_what_to_do_and_auto_falls_back(timm_offline, caplog):
    from features import WeightsUnavailable, resolve_weights

    for value in ("imagenet", "pretrained"):
        with pytest.raises(WeightsUnavailable, match=r"cannot load the pretrained weights of timm/convnext_atto "
                                                     r"\(hf-hub:timm/convnext_atto.d2_in1k\).*Connect to the internet "
                                                     r"once.*features.weights = \"auto\""):
            resolve_weights("timm/convnext_atto", value)
    weights = resolve_weights("timm/convnext_atto", "auto", seed=2)
    assert weights.fell_back and weights.identity == "random(seed=2)" and "using random weights" in caplog.text
    with pytest.raises(ValueError, match="weights 'IMAGENET1K_V1' are not valid for timm/convnext_atto; valid: "
                                         "imagenet, random, auto, pretrained"):
        resolve_weights("timm/convnext_atto", "IMAGENET1K_V1")


def test_timm_preprocessing_is_the_pretrained_config_and_names_the_store(tmp_path):
    pytest.importorskip("timm")
    timm_recipe = Recipe.resolve("timm/vit_small_patch14_dinov2.lvd142m", "random", image_size=56)
    assert timm_recipe.pixels["interpolation"] == "bicubic" and timm_recipe.pixels["resize_size"] == [56]  # crop_pct 1
    convnext = Recipe.resolve("timm/convnext_tiny.fb_in1k", "random", image_size=224).pixels
    assert convnext["resize_size"] == [256] and convnext["mean"] == [0.485, 0.456, 0.406]  # floor(224 / 0.875)
    source = ImageArrays(IMAGES, np.arange(4) % 2)
    torchvision_recipe = Recipe.resolve("convnext_tiny", "random", image_size=224)
    assert torchvision_recipe.pixels["resize_size"] == [236] and torchvision_recipe.pixels["interpolation"] == "bilinear"
    assert Recipe.resolve("timm/convnext_tiny.fb_in1k", "random").store_path(tmp_path, source) != \
        torchvision_recipe.store_path(tmp_path, source)
    with pytest.raises(ValueError, match="unknown timm model 'convnext_tiniest'.*did you mean"):
        get_backbone("timm/convnext_tiniest")
    with pytest.raises(ValueError, match="timm model 'convnext_tiny' has no pretrained tag 'nope'; its tags: "):
        get_backbone("timm/convnext_tiny.nope")


def test_timm_top_block_fine_tunes_on_its_maps():
    pytest.importorskip("timm")
    from features import resolve_weights
    from features.backbones import tap_extractor, top_block

    model = build_model(resolve_weights("timm/resnet18", "random"))
    top = get_backbone("timm/resnet18").top
    outputs = tap_extractor(model, "timm/resnet18", ["layer3", top])(torch.rand(2, 3, 64, 64))
    with torch.inference_mode():
        assert torch.allclose(top_block(model, "timm/resnet18", "layer3")(outputs["layer3"]), outputs[top], atol=1e-5)
