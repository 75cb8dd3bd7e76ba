"""The command line end to end: extract -> fit -> report on tiny generated image folders."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import h5py
import joblib
import numpy as np
import pytest

from features import FeatureStore, ImageFolder
from pipeline.cli import COMMANDS, main

ONE_PROCESS = ("--set", "classifiers.n_jobs=1")  # 16 images: worker processes cost more than they save


def test_run_writes_stores_models_table_and_report(image_folder, write_config, cli, tmp_path):
    config = write_config(f'root = "{image_folder}"')
    code, out, err = cli("run", "-c", str(config), *ONE_PROCESS)
    assert code == 0, err

    run_dir = tmp_path / "runs" / "test"
    with open(run_dir / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 * 2  # 2 taps x 1 pooling x 2 classifiers
    assert {(r["tap"], r["classifier"]) for r in rows} == {
        ("layer1", "logreg"), ("layer1", "linsvm"), ("pool", "logreg"), ("pool", "linsvm")
    }
    assert all(0.0 <= float(r["test_accuracy"]) <= 1.0 for r in rows)
    assert rows[0]["best"] == "overall"
    assert all(r["n_test"] == "4" and r["n_train"] == "12" for r in rows)  # 25 % of 2 x 8, stratified

    # the printed table, and the random-weights banner in the output and the report
    assert "test acc" in out and "overall" in out
    assert "NOT transfer learning" in out
    report = (run_dir / "report.md").read_text()
    assert "NOT transfer learning" in report and "accuracy_by_depth.png" in report
    assert (run_dir / "accuracy_by_depth.png").read_bytes()[:4] == b"\x89PNG"

    # fitted models load with joblib and predict class indices
    model = joblib.load(run_dir / "models" / "resnet50" / "pool-avg-logreg.joblib")
    (store_path,) = (tmp_path / "cache").glob("images-resnet50-*.h5")
    with h5py.File(store_path) as file:
        codes = file["features/pool/avg"][()]
        assert codes.shape == (16, 2048)
        assert file["features/layer1/avg"].shape == (16, 256)
        assert file.attrs["weights"] == "random(seed=0)"
        assert json.loads(file.attrs["preprocessing"])["crop_size"] == [32]
        assert sorted(s.decode() for s in file["classes"][()]) == ["cat", "dog"]
    assert set(model.predict(codes)) <= {0, 1}

    assert "config.toml" in {p.name for p in run_dir.iterdir()}


def test_second_run_reuses_the_cache_and_a_new_tap_adds_only_itself(image_folder, write_config, cli, tmp_path):
    config = write_config(f'root = "{image_folder}"')
    assert cli("extract", "-c", str(config))[0] == 0
    (store_path,) = (tmp_path / "cache").glob("*.h5")
    with h5py.File(store_path) as file:
        pool_before = file["features/pool/avg"][()]

    code, _, err = cli("extract", "-c", str(config), "--force")
    assert code == 0 and "computed nothing new" in err and "2 cached" in err

    code, _, err = cli("extract", "-c", str(config), "--set", 'features.taps.resnet50=["layer2", "pool"]')
    assert code == 0 and "computed layer2/avg" in err and "1 cached" in err
    assert list((tmp_path / "cache").glob("*.h5")) == [store_path]
    with h5py.File(store_path) as file:
        assert set(file["features"]) == {"layer1", "layer2", "pool"}
        np.testing.assert_array_equal(file["features/pool/avg"][()], pool_before)


def test_split_folders_are_respected_with_loader_workers(split_image_folder, write_config, cli, tmp_path):
    config = write_config(f'root = "{split_image_folder}"')
    code, _, err = cli("run", "-c", str(config), "--set", 'classifiers.models=["logreg"]', *ONE_PROCESS,
                        "--set", "features.num_workers=2")
    assert code == 0, err
    with open(tmp_path / "runs" / "test" / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert {(r["n_train"], r["n_test"]) for r in rows} == {("12", "6")}


def test_fit_before_extract_extracts_first_like_a_make_target(image_folder, write_config, cli, tmp_path):
    code, out, err = cli("fit", "-c", str(write_config(f'root = "{image_folder}"')), *ONE_PROCESS)
    assert code == 0, err
    assert "extract: missing (never ran); running" in err
    assert "fit: missing (never ran, extract will run); running" in err
    assert "report" not in err and not out  # a target runs what it needs, nothing after it
    assert (tmp_path / "runs" / "test" / "results.json").is_file()


@pytest.mark.parametrize(
    "override, message",
    [
        ("features.weights=imagenett", "weights 'imagenett' are not valid for resnet50; valid: imagenet, random, auto"),
        ('features.backbones=["resnet5"]', "features.backbones = 'resnet5' is not valid (did you mean 'resnet50' or "
                                           "'resnet152' or 'resnet34'?); valid choices: vgg16, resnet50"),
        ("features.pooling=mean", "features.pooling = 'mean' is not valid; valid choices: avg, max"),
        ("features.batchsize=8", "unknown key 'batchsize' in [features] (did you mean 'batch_size'?)"),
        ("features.image_size=big", "features.image_size = 'big' has the wrong type; expected integer"),
        ('features.taps.resnet50=["layer9"]', "features.taps.resnet50 (or its default taps) with features.pooling: unknown tap "
                                           "'layer9' for backbone 'resnet50' (did you mean 'layer4'"),
        ("classifiers.models=svm", "classifiers.models = 'svm' is not valid"),
        ("data.test_size=1.5", "data.test_size = 1.5 must be between 0 and 1"),
        ("features", "--set 'features' must look like section.key=value"),
    ],
)
def test_bad_config_exits_2_naming_the_key_and_choices(image_folder, write_config, cli, override, message):
    code, _, err = cli("extract", "-c", str(write_config(f'root = "{image_folder}"')), "--set", override)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_missing_config_file_exits_2(cli, tmp_path):
    code, _, err = cli("run", "-c", str(tmp_path / "nope.toml"))
    assert code == 2 and "nope.toml does not exist" in err


def test_missing_image_folder_exits_1_naming_it(write_config, cli, tmp_path):
    code, _, err = cli("extract", "-c", str(write_config(f'root = "{tmp_path / "nowhere"}"')))
    assert code == 1 and "nowhere does not exist" in err


def test_broken_image_is_named(image_folder, write_config, cli):
    (image_folder / "cat" / "cat3.png").write_bytes(b"\x89PNG truncated")
    code, _, err = cli("extract", "-c", str(write_config(f'root = "{image_folder}"')), "--set", "data.on_error=fail")
    assert code == 1
    assert "cannot read image" in err and "cat3.png" in err


def test_python_dash_m_and_help_show_examples(capsys):
    result = subprocess.run([sys.executable, "-m", "pipeline", "run", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "python -m pipeline run -c examples/demo.toml" in result.stdout
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0 and "examples:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2 and "COMMAND" in capsys.readouterr().err


def test_a_failed_extraction_keeps_finished_codes(image_folder, write_config, cli, tmp_path, monkeypatch):
    config = write_config(f'root = "{image_folder}"')
    assert cli("extract", "-c", str(config))[0] == 0
    layer2 = ("--set", 'features.taps.resnet50=["layer1", "layer2", "pool"]', "--set", "data.on_error=fail")

    load = ImageFolder.load

    def fails_late(self, index, min_side=None):  # an image read error after two batches were written
        if index == 12:
            raise OSError(f"cannot read image {self.root / self.ids[index]}: disk error")
        return load(self, index, min_side)

    monkeypatch.setattr(ImageFolder, "load", fails_late)
    code, _, err = cli("extract", "-c", str(config), *layer2)
    assert code == 1 and "disk error" in err
    (store_path,) = (tmp_path / "cache").glob("*.h5")
    with FeatureStore(store_path) as store:
        assert sorted(store.available()) == [("layer1", "avg"), ("pool", "avg")]

    monkeypatch.setattr(ImageFolder, "load", load)
    code, _, err = cli("extract", "-c", str(config), *layer2)
    assert code == 0, err
    assert "computed layer2/avg" in err and "2 cached" in err
    with FeatureStore(store_path) as store:
        resumed, _ = store.codes("layer2", "avg")
    assert np.isfinite(resumed).all() and np.abs(resumed).sum(axis=1).min() > 0


def test_console_script_runs_the_same_command_line():
    script = Path(sys.executable).with_name("cnncodes")
    if not script.exists():
        pytest.skip("the project is not installed in this environment (make test installs it)")
    result = subprocess.run([str(script), "fit", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--set SECTION.KEY=VALUE" in result.stdout
