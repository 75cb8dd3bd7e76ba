"""int8 extraction: calibrated on training images, a store of its own, codes near float32's,
the same codes again at prediction; refused on a GPU; a CPU without VNNI still runs it."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from features import (
    FeatureStore,
    Forward,
    ImageFiles,
    ImageFolder,
    Recipe,
    Runtime,
    compute_codes,
    extract_codes,
    resolve_weights,
    spec_of_store,
)
from features import cpu, quantize
from features.extraction import with_calibration_sample
from features.forward import check_int8_device
from features.quantize import calibration_sample

WEIGHTS = resolve_weights("resnet50", "random")
TAPS = ["layer1"]
RUNTIME = Runtime(batch_size=8, num_workers=0, progress=False)
INT8_BOUND = 0.1
"""The largest relative difference of int8 codes to float32's (whole dataset) these tests
accept: random weights at 32 px give 1-3 %; the real VGG16 at 64 px 2-4 % (docs/speed.md)."""


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory):
    """One int8 and one float32 extraction of a split folder (an int8 network compiles: tens of seconds)."""
    from conftest import _make_images

    root = tmp_path_factory.mktemp("int8")
    _make_images(root / "images" / "train", per_class=6, seed=1)
    _make_images(root / "images" / "test", per_class=3, seed=2)
    source = ImageFolder(root / "images")
    recipe = Recipe(WEIGHTS, image_size=32, precision="int8", calibration_images=8)
    int8 = extract_codes(source, recipe, taps=TAPS, poolings=["avg"], cache_dir=root / "cache", runtime=RUNTIME)
    float32 = extract_codes(source, Recipe(WEIGHTS, image_size=32), taps=TAPS, poolings=["avg"],
                            cache_dir=root / "cache", runtime=RUNTIME)
    return root, source, int8, float32


def test_int8_codes_have_their_own_store_close_to_float32(int8_run):
    root, source, int8, float32 = int8_run
    assert int8.path != float32.path and int8.images == float32.images == len(source)
    with FeatureStore(int8.path) as quantized, FeatureStore(float32.path) as plain:
        calibration = json.loads(quantized.attrs["calibration"])
        assert quantized.attrs["precision"] == "int8" and "calibration" not in plain.attrs
        for tap in TAPS:
            codes, reference = quantized.codes(tap, "avg")[0], plain.codes(tap, "avg")[0]
            assert codes.dtype == np.float32  # pooling and storage stay float
            assert 0 < _relative(codes, reference) < INT8_BOUND
    assert calibration["images"] == 8 and calibration["seed"] == 0 and len(calibration["sample"]) == 16
    assert calibration["method"] == "pt2e-x86-inductor"
    assert list((root / "cache").glob("resnet50-int8-calibration-*.pt"))  # the ranges, kept for predict


def test_prediction_reads_the_calibration_and_gets_the_fit_time_codes(int8_run):
    root, source, int8, _ = int8_run
    with FeatureStore(int8.path) as store:
        spec = spec_of_store(store.attrs, "layer1", "avg")
        stored = dict(zip(store.ids, store.codes("layer1", "avg")[0]))
    recipe = Recipe.from_spec(spec, WEIGHTS)
    assert recipe.spec("layer1", "avg") == spec  # what predict checks before any image is read
    files = sorted((root / "images" / "test").rglob("*.png"))[:3]  # a batch of its own, padded
    codes, failed = compute_codes(ImageFiles([str(path) for path in files]), recipe, taps=["layer1"], poolings=["avg"],
                                  runtime=RUNTIME, cache_dir=root / "cache")
    assert not failed
    expected = np.stack([stored[f"test/{path.parent.name}/{path.name}"] for path in files])
    np.testing.assert_allclose(codes[("layer1", "avg")], expected, rtol=1e-4, atol=1e-5)


def test_prediction_without_the_calibration_says_to_extract_again(int8_run, tmp_path):
    root, _, int8, _ = int8_run
    with FeatureStore(int8.path) as store:
        recipe = Recipe.from_spec(spec_of_store(store.attrs, "layer1", "avg"), WEIGHTS)
    image = next((root / "images" / "test").rglob("*.png"))
    with pytest.raises(ValueError, match="no int8 calibration .* run the extract stage"):
        compute_codes(ImageFiles([str(image)]), recipe, taps=["layer1"], poolings=["avg"], runtime=RUNTIME,
                      cache_dir=tmp_path)


def test_calibration_sample_is_stratified_and_seeded():
    labels = np.repeat([0, 1, 2], [60, 30, 10])
    splits = np.where(np.arange(100) % 5 == 0, "test", "train")
    sample = calibration_sample(labels, splits, 20, seed=3)
    assert len(sample) == 20 and set(splits[sample]) == {"train"} and list(sample) == sorted(sample)
    assert np.bincount(labels[sample]).tolist() == [12, 6, 2]  # the training images' class shares
    assert np.array_equal(sample, calibration_sample(labels, splits, 20, seed=3))
    assert not np.array_equal(sample, calibration_sample(labels, splits, 20, seed=4))
    assert len(calibration_sample(labels, splits, 1000, seed=0)) == 80  # all training images


def test_the_same_seed_calibrates_the_same_codes_and_another_seed_another_store(int8_run, tmp_path):
    _, source, int8, _ = int8_run
    recipe = Recipe(WEIGHTS, image_size=32, precision="int8", calibration_images=8)
    again = extract_codes(source, recipe, taps=TAPS, poolings=["avg"], cache_dir=tmp_path,
                          runtime=RUNTIME)  # calibrated anew: a fresh cache
    assert again.path.name == int8.path.name
    with FeatureStore(int8.path) as first, FeatureStore(again.path) as second:
        np.testing.assert_array_equal(first.codes("layer1", "avg")[0], second.codes("layer1", "avg")[0])
    other, _ = with_calibration_sample(replace(recipe, calibration_seed=5), source)
    assert other.store_path(tmp_path, source) != again.path


def test_int8_without_training_images_is_refused_by_name(image_folder, tmp_path):
    source = ImageFiles([str(path) for path in sorted(image_folder.rglob("*.png"))[:2]])  # no splits: all "test"
    with pytest.raises(ValueError, match="int8.*calibrates on training images"):
        extract_codes(source, Recipe(WEIGHTS, image_size=32, precision="int8"), taps=["layer1"], poolings=["avg"],
                      cache_dir=tmp_path, runtime=RUNTIME)


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_int8_is_refused_on_a_gpu_by_name(device):
    with pytest.raises(ValueError, match=r'precision = "int8" runs on the CPU only.*"bfloat16"'):
        check_int8_device(device)
    with pytest.raises(ValueError, match="int8"):
        Forward(device=device, precision="int8")
    assert Forward(device=device, precision="bfloat16").precision == "bfloat16"  # keeps its GPU meaning


def test_a_cpu_without_vnni_runs_int8_in_seven_bits_and_says_so(int8_run, tmp_path, monkeypatch, caplog):
    _, source, int8, float32 = int8_run
    monkeypatch.setattr(cpu, "cpu_instructions", lambda: dict.fromkeys(cpu.INSTRUCTIONS, False))
    recipe = Recipe(WEIGHTS, image_size=32, precision="int8", calibration_images=8)
    assert recipe.calibration["reduce_range"] is True  # part of the codes: another store, another spec
    done = extract_codes(source, recipe, taps=["layer1"], poolings=["avg"], cache_dir=tmp_path, runtime=RUNTIME)
    assert done.path.name != int8.path.name
    assert "this CPU has no VNNI" in caplog.text
    with FeatureStore(done.path) as slow, FeatureStore(float32.path) as plain:
        assert json.loads(slow.attrs["calibration"])["reduce_range"] is True
        assert _relative(slow.codes("layer1", "avg")[0], plain.codes("layer1", "avg")[0]) < INT8_BOUND


def test_int8_without_torchao_says_what_to_install(split_image_folder, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torchao.quantization.pt2e.quantize_pt2e", None)  # as if not installed
    with pytest.raises(ValueError, match=r'needs torchao: pip install "cnn-codes\[int8\]"'):
        extract_codes(ImageFolder(split_image_folder), Recipe(WEIGHTS, image_size=32, precision="int8"), taps=TAPS,
                      poolings=["avg"], cache_dir=tmp_path, runtime=RUNTIME)


class ConvTaps(torch.nn.Module):
    """``depth`` 3x3 convolutions, each followed by a ReLU, ``{"conv": the last one's output}``:
    int8's machinery in milliseconds. From the second convolution on, an input's range is an
    activation's, which the calibration's forward sets."""

    def __init__(self, depth: int = 1):
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(3 if index == 0 else 4, 4, 3) for index in range(depth))

    def forward(self, images):
        for conv in self.convs:
            images = torch.relu(conv(images))
        return {"conv": images}


def test_int8_ranges_cover_the_calibration_extremes_so_outlying_pixels_are_not_clipped(tmp_path):
    torch.manual_seed(0)
    network, images = ConvTaps().eval(), torch.randn(64, 3, 16, 16)
    images[0, :, 7:9, 7:9] *= 40  # a few pixels far out: a histogram's range clips them (9 steps off)
    int8 = quantize.int8_model(network, tmp_path / "ranges.pt", 16, 64, lambda: images.split(32))
    with torch.no_grad():
        codes, expected = int8(images)["conv"], network(images)["conv"]
    step = expected.max() / 255  # uint8 over [0, the largest activation]
    assert (codes - expected).abs().max() < 4 * step  # min-max: 2.3 steps at most


def test_the_calibration_runs_in_bfloat16_where_the_cpu_has_it_and_sets_float32s_ranges_within_a_step(
        tmp_path, monkeypatch):
    torch.manual_seed(0)
    network, images = ConvTaps(depth=2).eval(), torch.randn(64, 3, 16, 16)
    ranges, settings = {}, []
    for native in (True, False):
        monkeypatch.setattr(cpu, "cpu_instructions", lambda: {**dict.fromkeys(cpu.INSTRUCTIONS, True), "amx": False,
                                                              "avx512_bf16": native})
        settings.append(quantize.quantization_settings())
        quantize.int8_model(network, tmp_path / f"{native}.pt", 16, 64, lambda: images.split(32))  # compiles later
        ranges[native] = torch.load(tmp_path / f"{native}.pt", weights_only=True)
    half, single = ([value for observer in ranges[native].values() for value in observer.values()]
                    for native in (True, False))
    assert any(not torch.equal(a, b) for a, b in zip(half, single)), "the calibration ran in float32"
    for a, b in zip(half, single):
        torch.testing.assert_close(a, b, rtol=0.005, atol=1e-6)  # a uint8 step is 1/255 of the range: 0.4 %
    assert settings[0] == settings[1], "the codes' name depends on it: a CPU without bfloat16 could not reuse the ranges"


def test_a_deeper_tap_calibrated_on_another_cpu_keeps_the_ranges_that_made_codes(tmp_path, monkeypatch):
    torch.manual_seed(0)
    deeper, images, path = ConvTaps(depth=3).eval(), torch.randn(64, 3, 16, 16), tmp_path / "ranges.pt"
    shallower = ConvTaps(depth=2).eval()
    shallower.load_state_dict(deeper.state_dict(), strict=False)  # the same layers, one fewer
    ranges = []
    for network, native in ((shallower, True), (deeper, False)):  # a CPU with bfloat16, then one without
        monkeypatch.setattr(cpu, "cpu_instructions", lambda: {**dict.fromkeys(cpu.INSTRUCTIONS, True), "amx": False,
                                                              "avx512_bf16": native})
        quantize.int8_model(network, path, 16, 64, lambda: images.split(32))
        ranges.append(torch.load(path, weights_only=True))
    first, both = ranges
    assert set(first) < set(both), "the deeper tap's ranges were added"
    for name in first:
        for key, value in first[name].items():
            assert torch.equal(both[name][key], value), f"{name}: calibrated again in float32"
