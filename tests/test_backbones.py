"""The backbone registry: every tap of every backbone, weights resolution, preprocessing."""

from urllib.error import URLError

import pytest
import torch
from torchvision.models import get_model_weights

from features import backbones
from features.backbones import (
    BACKBONES,
    WeightsUnavailable,
    build_tap_extractor,
    preprocessing,
    resolve_weights,
)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_tap_runs_on_a_small_input(name):
    backbone = BACKBONES[name]
    extractor = build_tap_extractor(resolve_weights(name, "random"), list(backbone.taps))
    with torch.inference_mode():
        outputs = extractor(torch.rand(2, 3, 32, 32))
    assert list(outputs) == list(backbone.taps)
    for tap, activation in outputs.items():
        assert activation.shape[0] == 2, tap
        assert activation.ndim in (2, 4), tap
    assert set(backbone.default_taps) <= set(backbone.taps)


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


def test_unknown_tap_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown tap 'pool9' for backbone 'vgg16'; valid taps: pool1, pool2"):
        build_tap_extractor(resolve_weights("vgg16", "random"), ["pool9"])


def test_preprocessing_is_the_weights_own_at_224():
    ours = preprocessing("resnet50", 224)
    theirs = get_model_weights("resnet50").DEFAULT.transforms()
    assert ours.crop_size == theirs.crop_size and ours.resize_size == theirs.resize_size
    assert ours.mean == theirs.mean and ours.std == theirs.std
    assert preprocessing("vgg16", 64).crop_size == [64]


@pytest.fixture
def hub(tmp_path):
    """An empty torch hub cache; yields its checkpoints folder."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(previous)


@pytest.fixture
def offline(hub, monkeypatch):
    """An empty torch hub cache and no network."""

    def no_network(url, **kwargs):
        raise URLError("Name or service not known")

    monkeypatch.setattr(backbones, "load_state_dict_from_url", no_network)
    return hub


def test_imagenet_offline_fails_with_what_to_do(offline):
    with pytest.raises(WeightsUnavailable, match="ResNet50_Weights.IMAGENET1K_V2.*Connect to the internet once"):
        resolve_weights("resnet50", "imagenet")


def test_auto_offline_falls_back_to_random(offline, caplog):
    weights = resolve_weights("resnet50", "auto", seed=3)
    assert weights.identity == "random(seed=3)"
    assert weights.fell_back and not weights.is_pretrained
    assert "using random weights for resnet50" in caplog.text


def test_cached_imagenet_checkpoint_is_used_without_download(hub):
    """A checkpoint already in torch's hub cache loads through the real loading code."""
    url = get_model_weights("resnet50").DEFAULT.url
    hub.mkdir(parents=True)
    reference = backbones.build_model(resolve_weights("resnet50", "random", seed=5))
    torch.save(reference.state_dict(), hub / url.rsplit("/", 1)[1])

    weights = resolve_weights("resnet50", "auto")
    assert weights.identity == "ResNet50_Weights.IMAGENET1K_V2" and weights.is_pretrained
    loaded = backbones.build_model(weights)
    assert torch.equal(loaded.fc.weight, reference.fc.weight)
