"""The finetune head in a run: maps and views extracted, fitted beside frozen classifiers,
reported against them, and used by predict on new images."""

import csv
import json
from pathlib import Path

import h5py
import joblib
import pytest

FINETUNE = (
    "--set", "features.taps.resnet50=[\"layer3\", \"pool\"]", "--set", "features.pooling=[\"avg\", \"none\"]",
    "--set", "features.views=1", "--set", "classifiers.models=[\"logreg\", \"finetune\"]",
    "--set", "classifiers.cv_folds=2", "--set", "classifiers.n_jobs=1",
    "--set", "classifiers.grid.finetune.max_iter=2", "--set", "classifiers.grid.finetune.batch_size=8",
)


@pytest.fixture
def run(cli, image_folder, write_config, tmp_path):
    config = write_config(f'root = "{image_folder}"')
    code, out, err = cli("run", "-c", config, *FINETUNE)
    assert code == 0, err
    return config, out, tmp_path / "runs" / "test"


def test_finetune_trains_on_maps_beside_the_frozen_classifiers_and_is_reported(run):
    _, out, run_dir = run
    rows = json.loads((run_dir / "results.json").read_text())["rows"]
    cells = sorted((row["tap"], row["pooling"], row["classifier"]) for row in rows)
    assert cells == [("layer3", "avg", "logreg"), ("layer3", "none", "finetune"), ("pool", "avg", "logreg")]
    (head,) = [row for row in rows if row["classifier"] == "finetune"]  # nothing follows pool: no head there
    assert head["preprocessing"] == "none" and head["n_features"] == 1024 * 2 * 2 and head["epochs"] == 2
    assert head["n_views"] == 12 and head["n_train"] == 24 and head["n_test"] == 4  # views: training rows only
    assert head["frozen_ms_per_image"] > 0
    assert head["recompute_seconds"] == pytest.approx(head["frozen_ms_per_image"] / 1000 * 2 * 24, abs=0.051)
    assert all(row["n_views"] == 12 for row in rows)  # the frozen classifiers train on the views too
    assert "Fine-tuned resnet50 after layer3 (finetune)" in out and "Best frozen classifier: resnet50" in out
    report = (run_dir / "report.md").read_text()
    assert "## Fine-tuning or a frozen classifier" in report and "won (by cv accuracy)" in report
    with open(run_dir / "results.csv", newline="") as file:
        assert {"epochs", "n_views", "recompute_seconds"} <= set(next(csv.DictReader(file)))


def test_predict_with_a_finetuned_model_gives_the_benchmarks_test_predictions(run, cli, image_folder, tmp_path):
    config, _, run_dir = run
    model_path = run_dir / "models" / "resnet50" / "layer3-none-finetune.joblib"
    sidecar = json.loads(Path(f"{model_path}.json").read_text())
    assert sidecar["spec"]["map_dtype"] == "float16" and sidecar["preprocessing"] == []
    (store_path,) = (tmp_path / "cache").glob("*.h5")
    with h5py.File(store_path) as file:
        ids = file["samples/id"].asstr()[()]
        maps = file["features/layer3/none"][()]
        classes = list(file["classes"].asstr()[()])
    model = joblib.load(model_path)
    plain = ["#view" not in sample for sample in ids]
    expected = {Path(sample).name: classes[label]
                for sample, label in zip(ids[plain], model.predict(maps[plain]))}
    out_csv = tmp_path / "predictions.csv"
    code, _, err = cli("predict", "-c", config, *FINETUNE, "--model", model_path, image_folder, "--out", out_csv)
    assert code == 0, err
    with open(out_csv, newline="") as file:
        predicted = {Path(row["path"]).name: row["predicted"] for row in csv.DictReader(file)}
    assert predicted == expected


def test_a_config_without_a_tap_to_finetune_from_says_so(cli, image_folder, write_config):
    config = write_config(f'root = "{image_folder}"')
    code, _, err = cli("run", "-c", config, *FINETUNE, "--set", "features.taps.resnet50=[\"pool\"]",
                       "--set", "features.pooling=[\"none\"]", "--set", "classifiers.models=[\"finetune\"]")
    assert code == 1 and "a map head needs pooling \"none\" and a tap with layers after it" in err
