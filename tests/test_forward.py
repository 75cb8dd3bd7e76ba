"""How the network runs: uint8 pixels normalised on the device, memory format, bfloat16, torch.compile."""

import dataclasses

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from features import (FeatureStore, Forward, ImageFiles, ImageFolder, Recipe, Runtime, compute_codes, extract_codes, load_image,
                      resolve_weights)
from features.weights import build_tap_extractor, preprocessing

WEIGHTS = resolve_weights("resnet50", "random")
RECIPE = Recipe(WEIGHTS, image_size=32)


def _codes(image_folder, runtime=Runtime(), num_workers=0, taps=("layer1", "layer2")):
    runtime = dataclasses.replace(runtime, batch_size=5, num_workers=num_workers, progress=False)
    codes, failed = compute_codes(ImageFiles([image_folder]), RECIPE, taps=list(taps), poolings=["avg"],
                                  runtime=runtime)
    assert failed == []
    return codes


def test_codes_are_the_weights_own_transform_through_the_network(image_folder):
    """Workers hand over uint8 crops; the float conversion and normalisation on the device must
    give what torchvision's transform of each image gives, in either memory format."""
    transform = preprocessing(WEIGHTS, 32)
    files = ImageFiles([image_folder]).files
    images = torch.stack([transform(load_image(file)) for file in files])
    with torch.inference_mode():
        expected = {tap: activation.mean(dim=(2, 3)).numpy()
                    for tap, activation in build_tap_extractor(WEIGHTS, ["layer1", "layer2"])(images).items()}
    for runtime, workers in ((Runtime(channels_last=True), 2), (Runtime(channels_last=False), 0)):
        codes = _codes(image_folder, runtime, workers)
        for tap in ("layer1", "layer2"):
            np.testing.assert_allclose(codes[tap, "avg"], expected[tap], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backbone, taps", [
    ("resnet50", ["layer1", "layer3"]),  # pairs that are nodes of the traced graph
    # torchvision's feature extraction calls its own ops (Conv2dNormActivation) as one module:
    # their pairs are steps of a Sequential, not nodes of the graph
    ("mobilenet_v3_small", ["features.3", "features.9"]),
    ("regnet_y_400mf", ["trunk_output.block2", "trunk_output.block4"]),
])
def test_batchnorms_fold_into_convolutions_without_changing_the_codes(backbone, taps):
    weights = resolve_weights(backbone, "random")
    network = build_tap_extractor(weights, taps, 64)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = network(images)
        folded = Forward(channels_last=False).model(build_tap_extractor(weights, taps, 64), batch_size=8)
        outputs = folded(images)
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in folded.modules())
    assert any(isinstance(module, torch.nn.BatchNorm2d) for module in network.modules())
    for tap in taps:  # float rounding only
        assert 0 < float((outputs[tap] - expected[tap]).norm() / expected[tap].norm()) < 1e-5


def test_bfloat16_codes_are_a_store_of_their_own_within_one_percent(image_folder, tmp_path):
    def extract(precision):
        return extract_codes(ImageFolder(image_folder), Recipe(WEIGHTS, image_size=32, precision=precision),
                             taps=["layer1", "layer2"], poolings=["avg", "none"], cache_dir=tmp_path,
                             runtime=Runtime(batch_size=5, progress=False))

    full, half = extract("float32"), extract("bfloat16")
    assert half.path != full.path and half.images == full.images == 16
    with h5py.File(full.path) as file:
        assert "precision" not in file.attrs  # float32 stores keep the names and attributes they always had
    with h5py.File(half.path) as file:
        assert file.attrs["precision"] == "bfloat16"
        assert file["features/layer2/avg"].dtype == np.float32  # pooled in float32 after the bfloat16 forward
    for tap in ("layer1", "layer2"):
        with FeatureStore(full.path) as exact, FeatureStore(half.path) as rounded:
            reference, codes = exact.codes(tap, "avg")[0], rounded.codes(tap, "avg")[0]
        assert np.linalg.norm(codes - reference) / np.linalg.norm(reference) < 1e-2
        assert not np.array_equal(codes, reference)


def test_unknown_precision_is_refused_by_name():
    with pytest.raises(ValueError, match=r"precision = 'float16' is not valid \(did you mean .*\); valid choices: float32, bfloat16"):
        Recipe(WEIGHTS, precision="float16")


def test_compiled_network_gives_the_same_codes(image_folder):
    from torch._dynamo.utils import counters

    counters.clear()
    compiled = _codes(image_folder, Runtime(compile=True), taps=("layer1",))
    assert counters["stats"]["unique_graphs"] >= 1  # really compiled, not run eagerly
    np.testing.assert_allclose(compiled["layer1", "avg"], _codes(image_folder, taps=("layer1",))["layer1", "avg"],
                               rtol=1e-4, atol=1e-5)



def _photos(root):
    """JPEGs of several sizes and modes, one turned by its EXIF tag, a PNG, and a corrupt JPEG."""
    rng = np.random.default_rng(0)
    for index in range(10):
        label = "ab"[index % 2]
        (root / label).mkdir(parents=True, exist_ok=True)
        size = (rng.integers(36, 90), rng.integers(36, 90), 3)
        picture = Image.fromarray(np.clip(rng.normal(120 + 60 * (index % 2), 40, size), 0, 255).astype(np.uint8))
        if index == 8:
            picture.save(root / label / "picture.png")
        else:
            picture.convert("L" if index == 3 else "RGB").save(root / label / f"photo{index}.jpg", quality=95)
    upright = Image.open(root / "a" / "photo0.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    upright.transpose(Image.Transpose.ROTATE_90).save(root / "a" / "turned.jpg", quality=95, exif=exif)
    (root / "b" / "broken.jpg").write_bytes((root / "b" / "photo1.jpg").read_bytes()[:300])
    return root


def test_jpegs_decoded_on_the_device_match_the_host_and_keep_their_order(tmp_path):
    photos = _photos(tmp_path / "photos")

    def extract(decode_on_device, num_workers):  # the device decodes at full scale: compare with the host's
        recipe = Recipe(WEIGHTS, image_size=32, fast_decode=False, decode_on_device=decode_on_device)
        done = extract_codes(ImageFolder(photos), recipe, taps=["layer2"], poolings=["avg"], cache_dir=tmp_path,
                             runtime=Runtime(batch_size=4, num_workers=num_workers, progress=False))
        with FeatureStore(done.path) as store:
            return done, dict(zip(store.ids, store.codes("layer2", "avg")[0])), dict(store.attrs)

    (host, host_codes, _), (device, device_codes, attrs) = extract(False, 0), extract(True, 2)
    assert device.path != host.path and attrs["decode_on_device"]
    assert [reason for _, reason in device.skipped] == [reason for _, reason in host.skipped]
    (broken, reason), = device.skipped  # refused on the device, then named by the host's decoder
    assert broken == "b/broken.jpg" and "broken.jpg" in reason
    assert device_codes.keys() == host_codes.keys() and len(device_codes) == 11
    for sample, codes in device_codes.items():  # resized on the device: the same pixels up to rounding
        reference = host_codes[sample]
        assert np.linalg.norm(codes - reference) / np.linalg.norm(reference) < 0.01, sample
    assert not np.array_equal(device_codes["a/photo0.jpg"], host_codes["a/photo0.jpg"])
    # nvJPEG ignores EXIF orientation: a turned photo is decoded on the host, so exactly as there
    np.testing.assert_array_equal(device_codes["a/turned.jpg"], host_codes["a/turned.jpg"])
    np.testing.assert_allclose(device_codes["a/turned.jpg"], device_codes["a/photo0.jpg"], rtol=0.05, atol=0.05)


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_a_compiled_network_pads_a_short_last_batch_in_its_memory_format_and_compiles_no_second_graph(
        precision, tmp_path, monkeypatch):
    graphs = []

    def counting_backend(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda network: compile_(network, backend=counting_backend))
    network = build_tap_extractor(WEIGHTS, ["layer1"], 32)
    with torch.inference_mode():  # as the stage makes its inputs
        images = torch.randn(6, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    if precision == "int8":
        from features.quantize import int8_model

        compiled = int8_model(network, tmp_path / "ranges.pt", 32, 4, lambda: [images])
    else:
        compiled = Forward(compile=True).model(network, batch_size=4)
    with torch.inference_mode():
        codes = torch.cat([compiled(batch)["layer1"] for batch in images.split(4)])  # the last batch padded to 4
        assert len(graphs) == 1, "the padded batch's shape or strides differ from the first batch's: compiled again"
        if precision == "float32":
            torch.testing.assert_close(codes, network(images)["layer1"])
