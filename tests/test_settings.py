"""Each setting has one owner that checks it: a config file, ``--set``, ``pipeline.run(set=...)``
and the Python API refuse a bad value with the same message (the config adds its section), before any work."""

import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest

import classifiers
import features
import pipeline
from features import AugmentedViews, ImageArrays, Recipe, Runtime, SettingError, Split, UserError
from classifiers import Tuning
from pipeline.config import ConfigError, load_config

IMAGES = ImageArrays(np.zeros((8, 8, 8), np.uint8), np.arange(8) % 2)


def _refusal(call) -> str:
    with pytest.raises(SettingError) as caught:
        call()
    return str(caught.value)


def _extract(tmp_path, **options):
    settings = {"image_size": 32, "device": "cpu", "num_workers": 0, "progress": False, **options}
    return lambda: features.extract(IMAGES, "resnet18", ["layer1"], weights="random", cache_dir=tmp_path / "cache",
                                    **settings)


def _benchmark(**settings):
    return lambda: classifiers.benchmark("no-store-needed.h5", ["logreg"], progress=False, **settings)


# (section, key, TOML value, the Python API's call with that value)
CASES = [
    ("features", "image_size", "0", lambda tmp_path: _extract(tmp_path, image_size=0)),
    ("features", "precision", '"float16"', lambda tmp_path: _extract(tmp_path, precision="float16")),
    ("features", "calibration_images", "0", lambda tmp_path: _extract(tmp_path, calibration_images=0)),
    ("features", "batch_size", "0", lambda tmp_path: _extract(tmp_path, batch_size=0)),
    ("features", "device", '"gpu"', lambda tmp_path: _extract(tmp_path, device="gpu")),
    ("features", "num_workers", "-1", lambda tmp_path: _extract(tmp_path, num_workers=-1)),
    ("features", "views", "-1", lambda tmp_path: _extract(tmp_path, views=-1)),
    ("data", "test_size", "1.5", lambda tmp_path: _extract(tmp_path, test_size=1.5)),
    ("data", "val_size", "0.75", lambda tmp_path: _extract(tmp_path, val_size=0.75)),
    ("classifiers", "cv_folds", "1", lambda tmp_path: _benchmark(cv_folds=1)),
    ("classifiers", "n_jobs", "0", lambda tmp_path: _benchmark(n_jobs=0)),
    ("classifiers", "tune_rows", "-1", lambda tmp_path: _benchmark(tune_rows=-1)),
    ("classifiers", "ensemble", "-2", lambda tmp_path: _benchmark(ensemble=-2)),
    ("classifiers", "preprocessing", '["pca"]', lambda tmp_path: _benchmark(preprocessing=["pca"])),
    ("classifiers", "models", '["svm"]', lambda tmp_path: lambda: classifiers.benchmark("x.h5", ["svm"])),
]


def _toml(image_folder, section: str, line: str) -> str:
    """A config with ``line`` in ``section``, the rest at the defaults (random weights)."""
    tables = {"data": [f'root = "{image_folder}"'], "features": ['weights = "random"'], "classifiers": []}
    tables[section].append(line)
    return "".join(f"[{name}]\n" + "".join(f"{entry}\n" for entry in lines) for name, lines in tables.items())


@pytest.mark.parametrize("section, key, value, api", CASES, ids=[f"{case[0]}.{case[1]}" for case in CASES])
def test_a_bad_value_is_refused_with_the_same_message_by_a_config_file_set_and_python(
        tmp_path, image_folder, write_config, cli, section, key, value, api):
    from_python = _refusal(api(tmp_path))
    assert from_python.startswith(f"{key} = ")  # the message names the setting
    path = tmp_path / "bad.toml"
    path.write_text(_toml(image_folder, section, f"{key} = {value}"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{section}.{from_python}"
    config = write_config(f'root = "{image_folder}"')
    code, _, err = cli("extract", "-c", config, "--set", f"{section}.{key}={value}")
    assert code == 2 and f"{section}.{from_python}" in err and "Traceback" not in err
    with pytest.raises(ConfigError, match=re.escape(f"{section}.{from_python}")):
        pipeline.run(config, set={f"{section}.{key}": tomllib.loads(f"v = {value}")["v"]})
    assert not (tmp_path / "cache").exists()  # refused before any work


@pytest.mark.parametrize("build, message", [
    (lambda: Recipe(features.resolve_weights("resnet18", "random"), dtype="int8"),
     "dtype = 'int8' is not valid; valid choices: float32, float16"),
    (lambda: Recipe(features.resolve_weights("resnet18", "random"), fast_decode="yes"),
     "fast_decode = 'yes' must be true or false"),
    (lambda: Runtime(map_budget_gb=0), "map_budget_gb = 0 must be more than 0 (gigabytes)"),
    (lambda: Runtime(num_workers="many"), "num_workers = 'many' must be a whole number at least 0 or \"auto\""),
    (lambda: Split(test_size=0), "test_size = 0 must be between 0 and 1 (e.g. 0.25)"),
    (lambda: Split(test_size=0.5, val_size=0.5), "val_size = 0.5 must be less than 1 - test_size (0.5)"),
    (lambda: Split(seed=-1), "seed = -1 must be at least 0"),
    (lambda: Tuning(head_folds=0), "head_folds = 0 must be at least 1 (1: scored like the other classifiers"),
    (lambda: Tuning(grid={"svm": {"C": [1.0]}}), "grid = 'svm' is not valid (did you mean 'linsvm' or 'svm-rbf'?)"),
    (lambda: Tuning(fuse=[["pool3/avg"]]), "fuse: ['pool3/avg'] fuses fewer than two tables"),
    (lambda: Tuning(memory_budget_gb="lots"), "memory_budget_gb = 'lots' must be a number more than 0"),
    (lambda: AugmentedViews(IMAGES, views=1.5), "views = 1.5 must be a whole number at least 0"),
])
def test_each_owner_refuses_its_bad_values_as_a_user_error_naming_the_setting(build, message):
    with pytest.raises(SettingError) as caught:
        build()
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)


def test_the_owners_defaults_are_valid_and_none_means_not_set():
    Split(), Runtime(), Tuning(tune_rows=None, n_jobs=None, fuse_width=None)  # no error
    assert Split(test_size=0.3, val_size=0.2, seed=4).rule == "StratifiedSplit(test_size=0.3, seed=4, val_size=0.2)"


def test_the_sources_module_does_not_import_the_datasets_module():
    code = ("import sys, features.sources, features.views; "
            "assert 'features.datasets' not in sys.modules, 'sources imports datasets'")
    subprocess.run([sys.executable, "-c", code], check=True)
