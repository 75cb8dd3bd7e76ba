"""The extract stage through the command line: sources, weights files, poolings, dtype, bad input."""

import json
from urllib.error import URLError

import h5py
import torch
import torchvision.datasets

from features import FeatureStore, verify_store
from features.weights import build_model, resolve_weights


def _stores(tmp_path):
    return json.loads((tmp_path / "runs" / "test" / "features.json").read_text())


def test_a_manifest_a_partial_weights_file_and_every_pooling(image_folder, write_config, cli, tmp_path):
    (image_folder / "list.csv").write_text("path,label\n" + "".join(
        f"{name}/{name}{index}.png,{name}\n" for name in ("cat", "dog") for index in range(8)) + "cat/gone.png,cat\n")
    model = build_model(resolve_weights("resnet50", "random", seed=4))
    torch.save({key: value for key, value in model.state_dict().items() if key.startswith(("conv1.", "bn1.", "layer1."))},
               tmp_path / "stem-and-layer1.pth")  # relative to the config, as written below
    config = write_config(f'manifest = "{image_folder / "list.csv"}"')
    options = ["--set", "features.weights=stem-and-layer1.pth", "--set", 'features.taps.resnet50=["stem", "layer1"]',
               "--set", 'features.pooling=["avgmax", "grid2"]', "--set", "features.dtype=float16"]

    code, _, err = cli("extract", "-c", config, *options)
    assert code == 0, err
    assert "skipped (recorded in the store; fix or remove the file): cannot read image" in err and "gone.png" in err
    entry = _stores(tmp_path)["resnet50"]
    assert entry["weights"] == "file stem-and-layer1.pth" and entry["pretrained"]
    assert [skip["id"] for skip in entry["skipped"]] == ["cat/gone.png"]
    with h5py.File(entry["store"]) as file:
        assert file["features/layer1/avgmax"].shape == (17, 512) and file["features/layer1/grid2"].shape == (17, 1024)
        assert file["features/stem/avgmax"].dtype == "float16" and len(file.attrs["weights_sha256"]) == 64
    with FeatureStore(entry["store"]) as store:
        assert len(store) == 16 and store.skipped[0][0] == "cat/gone.png"
    assert verify_store(entry["store"]) == []

    code, _, err = cli("extract", "-c", config, *options, "--set", 'features.taps.resnet50=["layer2"]')
    assert code == 1 and "Traceback" not in err
    assert "tap 'layer2' of resnet50 needs parameters that weights file" in err and "layer2.0.bn1.bias" in err


def test_any_torchvision_model_by_name_with_its_default_tap(image_folder, write_config, cli, tmp_path):
    config = write_config(f'root = "{image_folder}"')
    code, _, err = cli("extract", "-c", config, "--set", 'features.backbones=["squeezenet1_1"]')
    assert code == 0, err
    assert "squeezenet1_1 [random(seed=0)] computed classifier.0/avg for 16 images" in err
    with FeatureStore(_stores(tmp_path)["squeezenet1_1"]["store"]) as store:
        assert store.codes("classifier.0", "avg")[0].shape == (16, 512)


def test_a_named_dataset_offline_is_one_line_saying_what_to_do(write_config, cli, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    code, _, err = cli("extract", "-c", write_config('dataset = "cifar10"'))
    assert code == 1 and "Traceback" not in err
    assert "cannot download dataset cifar10 into" in err and "connect to the internet once" in err


def test_bad_names_in_the_config_list_the_valid_choices(image_folder, write_config, cli):
    config = write_config(f'root = "{image_folder}"')
    for override, message in [
        ("features.pooling=grid0", "features.pooling = 'grid0' is not valid (did you mean 'grid<k>'?); valid choices: "
                                   "avg, max, avgmax, grid<k>"),
        ('features.taps.squeezenet1_1=["features.99"]', "features.taps.squeezenet1_1 (or its default taps) with "
                                                        "features.pooling: unknown tap 'features.99' for backbone "
                                                        "'squeezenet1_1' (did you mean"),
        ("features.weights=IMAGENET1K_V9", "weights 'IMAGENET1K_V9' are not valid for resnet50; valid: imagenet, "
                                           "random, auto, IMAGENET1K_V1, IMAGENET1K_V2"),
        ("data.on_error=ignore", "data.on_error = 'ignore' is not valid; valid choices: skip, fail"),
        ("features.dtype=float64", "features.dtype = 'float64' is not valid (did you mean 'float16' or 'float32'?); valid "
                                   "choices: float32, float16"),
        ("data.manifest=list.csv", "[data] needs exactly one of root (an image folder), manifest (a CSV file) and "
                                   "dataset"),
    ]:
        code, _, err = cli("extract", "-c", config, "--set", override)
        assert code == 2 and message in err, (override, err)
