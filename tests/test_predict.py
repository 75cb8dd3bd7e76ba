"""The commands around the stages: predict (new images through a fitted model), taps and verify."""

import csv
import json
from pathlib import Path

import h5py
import joblib
import numpy as np
import pytest
import torch

QUICK = ("--set", 'classifiers.models=["logreg"]', "--set", "classifiers.cv_folds=2", "--set", "classifiers.n_jobs=1")


def _read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def _store_predictions(tmp_path, model_path):
    """What the model says about the codes the store holds, by file name."""
    spec = json.loads(Path(f"{model_path}.json").read_text())["spec"]
    (store_path,) = (tmp_path / "cache").glob("*.h5")
    with h5py.File(store_path) as file:
        ids = [Path(sample.decode()).name for sample in file["samples/id"][()]]
        codes = file[f"features/{spec['tap']}/{spec['pooling']}"][()]
        classes = [name.decode() for name in file["classes"][()]]
    model = joblib.load(model_path)
    return {sample: classes[label] for sample, label in zip(ids, model.predict(codes))}


def test_predict_fits_first_then_agrees_with_the_model_on_the_stores_codes(cli, config, image_folder, run_dir,
                                                                             tmp_path):
    (image_folder / "notes.png").write_text("not an image")  # not in a class folder: only predict sees it
    out_csv = tmp_path / "predictions.csv"
    code, out, err = cli("predict", "-c", config, *QUICK, image_folder, "--out", out_csv, "--top-k", "2")
    assert code == 0, err
    assert "extract: missing" in err and "fit: missing" in err  # brought up to date first, like make

    rows = _read_csv(out_csv)
    assert list(rows[0]) == ["path", "predicted", "probability", "class_1", "score_1", "class_2", "score_2", "error"]
    assert len(rows) == 17  # 16 images and the unreadable file, which gets a row with its reason
    (broken,) = [row for row in rows if row["error"]]
    assert broken["path"].endswith("notes.png") and broken["predicted"] == "" and "notes.png" in broken["error"]
    assert "notes.png" in err  # also said on the console

    results = json.loads((run_dir / "results.json").read_text())
    expected = _store_predictions(tmp_path, run_dir / results["best_model"])
    readable = [row for row in rows if not row["error"]]
    assert {Path(row["path"]).name: row["predicted"] for row in readable} == expected
    for row in readable:
        assert row["class_1"] == row["predicted"] and row["class_2"] in {"cat", "dog"} - {row["predicted"]}
        assert float(row["score_1"]) == pytest.approx(float(row["probability"]), abs=1e-4)
        assert float(row["score_1"]) + float(row["score_2"]) == pytest.approx(1.0, abs=1e-3)
    assert "predicted" in out and "probability" in out  # the table on standard output


def test_predict_again_does_no_cnn_work_and_new_weights_refit_first(cli, config, image_folder, run_dir,
                                                                    monkeypatch):
    assert cli("predict", "-c", config, *QUICK, image_folder / "cat")[0] == 0
    first = (run_dir / "predictions.csv").read_text()

    with monkeypatch.context() as patched:
        patched.setattr(torch.nn.Module, "__init__", lambda *args, **kwargs: pytest.fail("a CNN was built"))
        code, _, err = cli("predict", "-c", config, *QUICK, image_folder / "cat")
    assert code == 0 and err == "up to date: extract, fit, predict; nothing to do\n"

    code, _, err = cli("predict", "-c", config, *QUICK, "--set", "features.seed=1", image_folder / "cat")
    assert code == 0, err
    assert "extract: stale ([features] changed)" in err and "fit: stale" in err and "predict: stale" in err
    assert len(_read_csv(run_dir / "predictions.csv")) == len(first.splitlines()) - 1 == 8


def test_a_model_fitted_on_other_weights_is_refused_naming_them(cli, config, image_folder, run_dir):
    assert cli("run", "-c", config, *QUICK)[0] == 0
    model = run_dir / "models" / "resnet50" / "pool-avg-logreg.joblib"
    code, _, err = cli("predict", "-c", config, "--set", "features.seed=7", "--model", model, image_folder / "dog")
    assert code == 1
    assert "fitted on other features" in err and "random(seed=0)" in err and "random(seed=7)" in err
    assert not (run_dir / "predictions.csv").exists()


def test_a_bfloat16_model_predicts_with_bfloat16_codes(cli, config, image_folder, run_dir, tmp_path):
    bfloat16 = ("--set", 'features.precision="bfloat16"')
    assert cli("run", "-c", config, *QUICK, *bfloat16)[0] == 0
    results = json.loads((run_dir / "results.json").read_text())
    model_path = run_dir / results["best_model"]
    assert json.loads(Path(f"{model_path}.json").read_text())["spec"]["precision"] == "bfloat16"
    out_csv = tmp_path / "predictions.csv"
    # the config now says float32: the model's own precision decides how new images are computed
    assert cli("predict", "-c", config, *QUICK, "--model", model_path, image_folder, "--out", out_csv)[0] == 0
    expected = _store_predictions(tmp_path, model_path)
    assert {Path(row["path"]).name: row["predicted"] for row in _read_csv(out_csv)} == expected


def test_a_model_from_before_fast_decoding_is_refused_not_a_traceback(cli, config, image_folder, run_dir):
    assert cli("run", "-c", config, *QUICK)[0] == 0
    model = run_dir / "models" / "resnet50" / "pool-avg-logreg.joblib"
    sidecar = model.with_name(model.name + ".json")
    saved = json.loads(sidecar.read_text())
    del saved["spec"]["preprocessing"]["fast_decode"]  # as fit wrote it before the setting existed
    sidecar.write_text(json.dumps(saved))
    code, _, err = cli("predict", "-c", config, "--model", model, image_folder / "dog")
    assert code == 1 and "fitted on other features" in err and "'fast_decode': False" in err


def test_a_changed_model_file_is_not_unpickled(cli, config, image_folder, run_dir):
    assert cli("run", "-c", config, *QUICK)[0] == 0
    model = run_dir / "models" / "resnet50" / "pool-avg-logreg.joblib"
    model.write_bytes(model.read_bytes() + b"\0")
    code, _, err = cli("predict", "-c", config, "--model", model, image_folder / "dog")
    assert code == 1 and "refusing to unpickle" in err


@pytest.mark.parametrize("arguments, message", [
    (["--model", "nowhere.joblib", "{images}"], "model file nowhere.joblib does not exist"),
    (["{images}/missing.png"], "missing.png is neither an image file nor a folder"),
])
def test_predict_input_errors_exit_1_naming_the_file(cli, config, image_folder, arguments, message):
    arguments = [argument.format(images=image_folder) for argument in arguments]
    code, _, err = cli("predict", "-c", config, *arguments)
    assert code == 1 and message in err and "Traceback" not in err


def test_predict_top_k_must_be_positive(cli, config, image_folder):
    with pytest.raises(SystemExit) as exit_info:
        cli("predict", "-c", config, "--top-k", "0", image_folder)
    assert exit_info.value.code == 2


def test_taps_lists_names_nodes_and_shapes_at_an_input_size(cli):
    code, out, _ = cli("taps", "vgg16", "--image-size", "64")
    assert code == 0
    lines = [line.split() for line in out.splitlines()[1:] if line and not line.startswith("*")]
    assert [line[0] for line in lines] == ["pool1", "pool2", "pool3", "pool4", "pool5", "fc6", "fc7", "classifier.5"]
    assert lines[0][1:9] == ["features.4", "map", "(C,", "H,", "W)", "64", "x", "32"]  # then 32, the pooled widths
    assert lines[4][1:3] == ["*", "features.30"] and lines[4][-5:] == ["512", "x", "2", "x", "2"]  # pool5: a default tap
    assert lines[6][1:4] == ["classifier.4", "vector", "(D,)"] and lines[6][5] == "4096"


@pytest.mark.parametrize("arguments, message", [
    (["resnet-50"], "unknown backbone 'resnet-50'"),
    (["vgg16", "--image-size", "16"], "vgg16 cannot run on 16 x 16 inputs"),
])
def test_taps_errors_exit_1_in_one_line(cli, arguments, message):
    code, _, err = cli("taps", *arguments)
    assert code == 1 and message in err and len(err.splitlines()) == 1


def test_verify_passes_a_sound_store_and_names_the_problems_of_a_damaged_one(cli, config, tmp_path):
    assert cli("extract", "-c", config)[0] == 0
    (store_path,) = (tmp_path / "cache").glob("*.h5")
    code, out, _ = cli("verify", store_path)
    assert code == 0 and out == f"{store_path}: ok\n"

    with h5py.File(store_path, "r+") as file:
        file["features/pool/avg"][3, 0] = np.nan
    missing = tmp_path / "cache" / "gone.h5"
    code, out, _ = cli("verify", store_path, missing)
    assert code == 1
    assert f"{store_path}: 1 problem(s)" in out and "finite" in out
    assert f"{missing}: 1 problem(s)" in out and "does not exist" in out
