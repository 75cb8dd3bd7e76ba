"""Backbones, taps and weights: the registry, any torchvision model, weights files, preprocessing."""

import pickle
from urllib.error import URLError

import pytest
import torch
from torchvision.models import get_model, get_model_weights
from torchvision.models.vgg import cfgs, make_layers

from features import weights as weights_module
from features import get_backbone, list_taps, resolve_weights
from features.backbones import BACKBONES, meta_model, tap_extractor, top_block
from features.weights import WeightsUnavailable, build_model, build_tap_extractor, preprocessing


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_tap_runs_on_a_small_input_with_the_listed_shape(name):
    backbone = BACKBONES[name]
    extractor = build_tap_extractor(resolve_weights(name, "random"), list(backbone.taps))
    with torch.inference_mode():
        outputs = extractor(torch.rand(2, 3, 32, 32))
    listed = {tap.name: tap.shape for tap in list_taps(name, image_size=32)}
    assert list(outputs) == list(backbone.taps) == [tap for tap in listed if tap in backbone.taps]
    for tap, activation in outputs.items():
        assert activation.shape[0] == 2 and tuple(activation.shape[1:]) == listed[tap], tap
    assert set(backbone.default_taps) <= set(backbone.taps) and backbone.top in backbone.taps


def test_taps_are_listed_with_nodes_and_shapes_for_an_input_size():
    taps = {tap.name: tap for tap in list_taps("vgg16", image_size=224)}
    assert taps["pool3"].node == "features.16" and taps["pool3"].shape == (256, 28, 28)
    assert taps["pool5"].shape == (512, 7, 7) and taps["fc7"].shape == (4096,)
    assert {tap.name: tap.shape for tap in list_taps("resnet50", 64)}["layer4"] == (2048, 2, 2)


def test_any_torchvision_model_works_by_name_with_graph_node_taps():
    backbone = get_backbone("mobilenet_v3_small")
    assert backbone.default_taps == ("features.6", "features.9", "features.12")  # its family's spread of stages
    assert backbone.top == "classifier.2"  # the features the last layer classifies
    taps = {tap.name: tap.shape for tap in list_taps("mobilenet_v3_small", 64)}
    assert taps["features.12"] == (576, 2, 2) and taps["classifier.2"] == (1024,)
    extractor = build_tap_extractor(resolve_weights("mobilenet_v3_small", "random"), ["features.12", "classifier.2"])
    with torch.inference_mode():
        outputs = extractor(torch.rand(1, 3, 64, 64))
    assert outputs["features.12"].shape == (1, 576, 2, 2) and outputs["classifier.2"].shape == (1, 1024)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown tap 'pool9' for backbone 'vgg16' \(did you mean 'pool5'.*\); valid taps: pool1, pool2"):
        build_tap_extractor(resolve_weights("vgg16", "random"), ["pool9"])
    with pytest.raises(ValueError, match=r"valid taps: layer1, layer2, .*\(\d+ in all, module and graph node "
                                         r"names included; `python -m pipeline taps resnet18`"):
        get_backbone("resnet18").node("nope")
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet5' \(did you mean 'resnet50' or .*\); registered: "
                                         r"vgg16, resnet50; or any torchvision classification model \(\d+: "):
        get_backbone("resnet5")
    with pytest.raises(ValueError, match="weights 'imagenett' are not valid for resnet50; valid: imagenet, random, "
                                         "auto, IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT, or a state-dict file"):
        resolve_weights("resnet50", "imagenett")


def test_random_weights_are_seeded_and_leave_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = build_tap_extractor(resolve_weights("resnet50", "random", seed=7), ["stem"])
    second = build_tap_extractor(resolve_weights("resnet50", "random", seed=7), ["stem"])
    assert torch.rand(1) == expected_next
    image = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(first(image)["stem"], second(image)["stem"])


def test_preprocessing_is_the_weights_own():
    ours = preprocessing(resolve_weights("resnet50", "random"), 224)
    theirs = get_model_weights("resnet50").DEFAULT.transforms()
    assert ours.crop_size == theirs.crop_size and ours.resize_size == theirs.resize_size
    assert ours.mean == theirs.mean and ours.std == theirs.std
    assert preprocessing(resolve_weights("vgg16", "random"), 64).crop_size == [64]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache; its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def offline(hub, monkeypatch):
    """An empty torch hub cache and no network."""

    def no_network(url, **kwargs):
        raise URLError("Name or service not known")

    monkeypatch.setattr(weights_module, "load_state_dict_from_url", no_network)
    return hub


def test_imagenet_offline_fails_with_what_to_do(offline):
    with pytest.raises(WeightsUnavailable, match="ResNet50_Weights.IMAGENET1K_V2.*Connect to the internet once"):
        resolve_weights("resnet50", "imagenet")
    with pytest.raises(WeightsUnavailable, match="ResNet50_Weights.IMAGENET1K_V1.*Connect to the internet once"):
        resolve_weights("resnet50", "IMAGENET1K_V1")


def test_auto_offline_falls_back_to_random(offline, caplog):
    weights = resolve_weights("resnet50", "auto", seed=3)
    assert weights.identity == "random(seed=3)"
    assert weights.fell_back and not weights.is_pretrained
    assert "using random weights for resnet50" in caplog.text


def _save_checkpoint(hub, enum_value, seed=5):
    hub.mkdir(parents=True, exist_ok=True)
    reference = build_model(resolve_weights("resnet50", "random", seed=seed))
    torch.save(reference.state_dict(), hub / enum_value.url.rsplit("/", 1)[1])
    return reference


def test_cached_imagenet_checkpoint_is_used_without_download(hub):
    """A checkpoint already in torch's hub cache loads through the real loading code."""
    reference = _save_checkpoint(hub, get_model_weights("resnet50").DEFAULT)
    weights = resolve_weights("resnet50", "auto")
    assert weights.identity == "ResNet50_Weights.IMAGENET1K_V2" and weights.is_pretrained
    loaded = build_model(weights)
    assert torch.equal(loaded.fc.weight, reference.fc.weight)


def test_a_named_weights_value_brings_its_own_preprocessing(hub):
    _save_checkpoint(hub, get_model_weights("resnet50").IMAGENET1K_V1)
    weights = resolve_weights("resnet50", "IMAGENET1K_V1")
    assert weights.identity == "ResNet50_Weights.IMAGENET1K_V1"
    assert preprocessing(weights, 224).resize_size == [256]  # V2 resizes to 232
    assert preprocessing(resolve_weights("resnet50", "random"), 224).resize_size == [232]


def _state_dict_file(path, name, keep=lambda key: True, seed=1):
    model = build_model(resolve_weights(name, "random", seed=seed))
    torch.save({key: value for key, value in model.state_dict().items() if keep(key)}, path)
    return model


def test_a_weights_file_is_named_by_its_sha256_and_loads(tmp_path):
    reference = _state_dict_file(tmp_path / "mine.pth", "resnet50")
    weights = resolve_weights("resnet50", str(tmp_path / "mine.pth"))
    assert weights.identity == "file mine.pth" and len(weights.sha256) == 64 and weights.key == weights.sha256
    assert weights.is_pretrained
    loaded = build_model(weights)
    assert torch.equal(loaded.layer4[0].conv1.weight, reference.layer4[0].conv1.weight)


def test_a_partial_file_allows_the_taps_it_covers_and_refuses_the_others(tmp_path):
    """Like the conv-only VGG16 ImageNet file: features.* present, classifier.* missing."""
    conv = make_layers(cfgs["D"])  # VGG16's conv layers alone, cheaper than the whole model
    torch.save({f"features.{key}": value for key, value in conv.state_dict().items()}, tmp_path / "conv.pth")
    weights = resolve_weights("vgg16", str(tmp_path / "conv.pth"))
    with pytest.raises(WeightsUnavailable, match=r"tap 'fc6' of vgg16 needs parameters that weights file "
                                                 r".*conv.pth lacks: classifier.0.bias, classifier.0.weight; "):
        build_tap_extractor(weights, ["pool5", "fc6"])
    extractor = build_tap_extractor(weights, ["pool3", "pool5"])
    with torch.inference_mode():
        image = torch.rand(1, 3, 32, 32)
        assert torch.allclose(extractor(image)["pool5"], conv(image))


def test_a_file_covering_the_taps_builds_no_random_model(tmp_path, monkeypatch):
    """The seeded build (a second of VGG16's fully connected layers) is skipped when the file
    holds what the taps use, also for a builder that computes with tensors (RegNet's)."""
    conv = make_layers(cfgs["D"])
    torch.save({f"features.{key}": value for key, value in conv.state_dict().items()}, tmp_path / "conv.pth")
    regnet = _state_dict_file(tmp_path / "regnet.pth", "regnet_x_400mf", seed=3)
    monkeypatch.setattr(weights_module, "_built", lambda *args: pytest.fail("built a random model first"))
    vgg = build_tap_extractor(resolve_weights("vgg16", str(tmp_path / "conv.pth")), ["pool4"])
    trunk = build_tap_extractor(resolve_weights("regnet_x_400mf", str(tmp_path / "regnet.pth")), ["trunk_output"])
    image = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(vgg(image)["pool4"], conv[:24](image))
        expected = tap_extractor(regnet, "regnet_x_400mf", ["trunk_output"])(image)["trunk_output"]
        assert torch.equal(trunk(image)["trunk_output"], expected)


def test_a_file_without_a_tensor_the_model_computes_when_built_loads_into_the_seeded_build(tmp_path, monkeypatch):
    """timm's CoAtNet keeps its attention's relative position index out of the state dict."""
    pytest.importorskip("timm")
    name, taps = "timm/test_coatnet", ["stages.1", "stages.2"]
    reference = _state_dict_file(tmp_path / "coatnet.pth", name, seed=3)
    seeded_builds = []
    seeded_build = weights_module._built
    monkeypatch.setattr(weights_module, "_built", lambda *args: seeded_builds.append(1) or seeded_build(*args))
    extractor = build_tap_extractor(resolve_weights(name, str(tmp_path / "coatnet.pth")), taps)
    assert seeded_builds, "the index would have stayed on the meta device"
    image = torch.rand(2, 3, 160, 160)
    with torch.inference_mode():
        expected = tap_extractor(reference, name, taps)(image)
        for tap, activation in extractor(image).items():
            assert torch.equal(activation, expected[tap]), tap


def test_weights_files_that_do_not_fit_get_a_clear_message(tmp_path):
    _state_dict_file(tmp_path / "resnet.pth", "resnet50", keep=lambda key: key.startswith("layer1."))
    with pytest.raises(WeightsUnavailable, match="has parameters that mobilenet_v3_small does not have .*another"):
        build_model(resolve_weights("mobilenet_v3_small", str(tmp_path / "resnet.pth")))

    model = get_model("resnet50", num_classes=10)
    torch.save({"fc.weight": model.fc.weight, "fc.bias": model.fc.bias}, tmp_path / "tenclass.pth")
    with pytest.raises(WeightsUnavailable, match=r"does not fit resnet50: fc.weight has shape \(10, 2048\) in the file and \(1000, 2048\)"):
        build_model(resolve_weights("resnet50", str(tmp_path / "tenclass.pth")))

    torch.save(model, tmp_path / "pickled-model.pt")  # a whole pickled model: weights_only refuses it
    with pytest.raises(WeightsUnavailable, match="cannot load weights file .*pickled-model.pt.*state dict"):
        build_model(resolve_weights("resnet50", str(tmp_path / "pickled-model.pt")))

    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(WeightsUnavailable, match="holds a list, not a state dict"):
        build_model(resolve_weights("resnet50", str(tmp_path / "list.pt")))

    with pytest.raises(WeightsUnavailable, match="weights file .*missing.pth does not exist"):
        resolve_weights("resnet50", str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("name, tap", [("vgg16", "pool4"), ("resnet50", "layer3")])
def test_top_block_maps_a_tap_to_the_top_and_pickles(name, tap):
    model = get_model(name, weights=None).eval()
    top = get_backbone(name).top
    block = top_block(model, name, tap)
    with torch.inference_mode():
        outputs = tap_extractor(model, name, [tap, top])(torch.rand(2, 3, 32, 32))
        assert torch.equal(block(outputs[tap]), outputs[top])
        assert torch.equal(pickle.loads(pickle.dumps(block))(outputs[tap]), outputs[top])
    assert not block.training


def test_top_block_of_vgg16_after_pool4_is_conv5():
    block = top_block(meta_model("vgg16"), "vgg16", "pool4")
    assert [name for name, _ in block.named_parameters()] == [
        f"features.{layer}.{kind}" for layer in (24, 26, 28) for kind in ("weight", "bias")]


def test_top_block_refuses_taps_it_cannot_start_from():
    with pytest.raises(ValueError, match="nothing to fine-tune after tap 'pool5' of vgg16: its top block ends at "
                                         "'pool5'; pick an earlier tap such as 'pool4'"):
        top_block(meta_model("vgg16"), "vgg16", "pool5")
    with pytest.raises(ValueError, match="nothing to fine-tune after tap 'pool' of resnet50.*such as 'layer3'"):
        top_block(meta_model("resnet50"), "resnet50", "pool")
    with pytest.raises(ValueError, match="top 'flatten' of resnet18 depends on the image other than through tap "
                                         "'layer4.0.conv1'"):  # the residual connection skips the tap
        top_block(meta_model("resnet18"), "resnet18", "layer4.0.conv1")
