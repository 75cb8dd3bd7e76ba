"""Fused taps, the stacked ensemble and the learning curves: cells like any other, through
``classifiers.benchmark`` and the command line (fit, report, predict)."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

import classifiers
import features
from classifiers import StackedCells

SMALL = dict(backbone="resnet50", taps=["layer1", "pool"], weights="random", image_size=32, batch_size=5,
             num_workers=0, progress=False)
QUICK = dict(cv_folds=2, n_jobs=1, progress=False)
ON = ("--set", "classifiers.fuse=[\"all\"]", "--set", "classifiers.fuse_models=0", "--set", "classifiers.ensemble=3",
      "--set", "classifiers.cv_folds=2",
      "--set", "classifiers.n_jobs=1", "--set", 'classifiers.models=["logreg", "ridge"]')


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from conftest import _make_images

    folder = tmp_path_factory.mktemp("fusion")
    _make_images(folder / "images", per_class=8, seed=0)
    with features.extract(folder / "images", cache_dir=folder / "cache", **SMALL) as opened:
        yield opened


def _side_by_side(store, parts, split="test"):
    return np.hstack([store.codes(tap, pooling, split)[0] for tap, pooling in parts])


def test_a_fused_cell_is_one_more_cell_for_every_classifier_named_by_its_parts(store):
    results = classifiers.benchmark(store, models=["logreg", "ridge"], fuse=[["pool/avg", "layer1/avg"]], ensemble=0,
                                    fuse_models=0, **QUICK)
    fused = [cell for cell in results.cells if "+" in cell.tap]
    assert len(results.cells) == 6 and sorted(cell.classifier for cell in fused) == ["logreg", "ridge"]
    for cell in fused:
        assert (cell.tap, cell.pooling) == ("pool+layer1", "avg+avg")  # in the order named
        depth = features.get_backbone(cell.backbone).depth
        assert cell.row["n_features"] == 2048 + 256 and cell.row["depth"] == max(depth("pool"), depth("layer1"))
        assert cell.spec["parts"] == [["pool", "avg"], ["layer1", "avg"]]
        assert cell.row["preprocessing"] == "ssqrt+standard per part"
        X, y = results.codes(cell, split="test")  # what its model takes
        np.testing.assert_array_equal(X, _side_by_side(store, [("pool", "avg"), ("layer1", "avg")]))
        assert cell.test_accuracy == pytest.approx(np.mean(cell.model.predict(X) == y))


def test_by_default_all_tables_of_a_backbone_are_fused_and_a_width_budget_reduces_each_part(store):
    default = classifiers.benchmark(store, models=["ridge"], ensemble=0, **QUICK)
    assert sorted(cell.tap for cell in default.cells) == ["layer1", "layer1+pool", "pool"]
    reduced = classifiers.benchmark(store, models=["ridge"], codes=["layer1/avg", "pool/avg"], ensemble=0,
                                    fuse_width=5, **QUICK)
    (cell,) = [cell for cell in reduced.cells if "+" in cell.tap]
    X = _side_by_side(store, [("layer1", "avg"), ("pool", "avg")])
    assert cell.model[:-1].transform(X).shape == (len(X), 5)  # 256 and 2048 columns: 1 and 4 components
    one = classifiers.benchmark(store, models=["ridge"], codes=["pool/avg"], ensemble=0, **QUICK)
    assert [cell.tap for cell in one.cells] == ["pool"]  # one table: nothing to fuse
    none = classifiers.benchmark(store, models=["ridge"], fuse=[], ensemble=0, **QUICK)
    assert len(none.cells) == 2


def test_a_fused_cell_takes_the_classifiers_of_the_best_single_tables(store):
    results = classifiers.benchmark(store, models=["logreg", "ridge", "knn"], ensemble=0, fuse_models=1, **QUICK)
    single = [cell for cell in results.cells if "+" not in cell.tap]
    fused = [cell for cell in results.cells if "+" in cell.tap]
    assert len(single) == 6 and [cell.classifier for cell in fused] == [single[0].classifier]  # the best by cv
    two = classifiers.benchmark(store, models=["logreg", "ridge", "knn"], ensemble=0, **QUICK)  # fuse_models = 2
    best_two = {cell.classifier for cell in [cell for cell in two.cells if "+" not in cell.tap][:2]}
    assert sorted(cell.classifier for cell in two.cells if "+" in cell.tap) == sorted(best_two)  # one when they share it


@pytest.mark.parametrize("fuse, message", [
    ([["layer1/avg"]], "fuses fewer than two tables"),
    ([["layer1/avg", "layer2/avg"]], r"no store has complete codes for all of them \(they have layer1/avg, pool/avg"),
    ("all", "must be a list"),
    ([["layer1", "pool/avg"]], "'layer1' in .* is not a \"tap/pooling\" name"),
])
def test_a_fuse_setting_that_cannot_be_made_is_refused_by_name(store, fuse, message):
    with pytest.raises(ValueError, match=message):
        classifiers.benchmark(store, models=["ridge"], fuse=fuse, **QUICK)


def test_the_ensemble_stacks_the_best_cells_by_cv_and_is_scored_once_on_test(store):
    results = classifiers.benchmark(store, models=["logreg", "ridge"], fuse=[], ensemble=3, **QUICK)
    (ensemble,) = [cell for cell in results.cells if cell.classifier == "ensemble"]
    single = [cell for cell in results.cells if cell is not ensemble]
    members = ensemble.row["params"]["members"]
    assert members == [f"{cell.tap}/{cell.pooling} {cell.classifier}" for cell in single][:len(members)]
    assert 2 <= len(members) <= 3 and ensemble.row["method"].startswith("stacking")
    parts = classifiers.parts_of(ensemble.spec)
    X, y = _side_by_side(store, parts), store.codes("pool", "avg", "test")[1]
    assert ensemble.row["n_features"] == X.shape[1]
    assert ensemble.test_accuracy == pytest.approx(np.mean(ensemble.model.predict(X) == y))
    probabilities = ensemble.model.predict_proba(X)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    alone = classifiers.benchmark(store, models=["ridge"], codes=["pool/avg"], ensemble=3, **QUICK)
    assert [row["classifier"] for row in alone.rows] == ["ridge"]  # one cell: nothing to stack


def test_no_ensemble_where_the_cells_are_scored_on_one_held_out_split(store, caplog):
    images = int(np.isin(store.splits, ("train", "val")).sum())
    with caplog.at_level("INFO", logger="classifiers.ensemble"):
        results = classifiers.benchmark(store, models=["logreg", "ridge"], fuse=[], ensemble=3,
                                        holdout_rows=images, **QUICK)
    assert "ensemble" not in [cell.classifier for cell in results.cells] and len(results.cells) == 4
    assert "no ensemble: at %d images or more" % images in caplog.text


@parametrize_with_checks([StackedCells([(LogisticRegression(), [(0, None)])], cv=2)])
def test_stacked_cells_keeps_the_estimator_contract(estimator, check):
    check(estimator)


def _rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_fit_report_and_predict_use_fused_and_ensemble_models(cli, config, image_folder, run_dir, tmp_path):
    code, out, err = cli("run", "-q", "-c", config, *ON)
    assert code == 0, err
    rows = _rows(run_dir / "results.csv")
    assert {(row["tap"], row["classifier"]) for row in rows} >= {("layer1+pool", "logreg"), ("layer1+pool", "ridge")}
    (ensemble,) = [row for row in rows if row["classifier"] == "ensemble"]
    assert "ensemble*" in out and "* ensemble: stacking" in out
    assert re.search(r"ensemble\*  .*members=\d ", out) and "members=[" not in out  # the count; results.csv names them
    assert "pool/avg ridge" in ensemble["params"]

    curve = _rows(run_dir / "learning_curve.csv")
    assert list(curve[0]) == ["backbone", "tap", "pooling", "classifier", "per_class", "n_train", "draw",
                              "test_accuracy"]
    assert len({(row["tap"], row["pooling"], row["classifier"]) for row in curve}) == 3  # the best three cells
    assert {row["per_class"] for row in curve} == {"1", "3", "6"}  # 6 training images per class: up to a quarter, half, all
    assert all(0 <= float(row["test_accuracy"]) <= 1 for row in curve)
    report = (run_dir / "report.md").read_text()
    assert "## Would more labels help?" in report and "over the last doubling" in report and "cs231n" in report
    assert "![learning curves of the best cells](learning_curve.png)" in report
    page = (run_dir / "report.html").read_text()
    assert 'alt="learning curves of the best cells"' in page and "Would more labels help?" in page

    with open(run_dir / "results.csv", newline="") as file:
        models = {row["classifier"] + ("+" if "+" in row["tap"] and row["classifier"] != "ensemble" else ""): row["model"]
                  for row in csv.DictReader(file)}
    for name in ("ensemble", "logreg+"):
        out_csv = tmp_path / f"{name}.csv"
        code, _, err = cli("predict", "-q", "-c", config, *ON, image_folder, "--model", run_dir / models[name],
                           "--out", out_csv)
        assert code == 0, err
        predicted = {Path(row["path"]).name: row["predicted"] for row in _rows(out_csv)}
        expected = _store_predictions(tmp_path, run_dir / models[name])
        assert predicted == expected, name
    code, out, _ = cli("status", "-c", config, *ON)
    assert code == 0  # the report's inputs (each fused table it read) are recorded and unchanged


def _store_predictions(tmp_path, model_path):
    """What a fused or stacked model says about the codes the store holds, by file name."""
    import joblib

    spec = json.loads(Path(f"{model_path}.json").read_text())["spec"]
    (path,) = (tmp_path / "cache").glob("*.h5")
    with features.FeatureStore(path) as opened:
        X = np.hstack([opened.codes(tap, pooling)[0] for tap, pooling in classifiers.parts_of(spec)])
        names = [Path(sample).name for sample in opened.ids]
        classes = opened.classes
    return {name: classes[label] for name, label in zip(names, joblib.load(model_path).predict(X))}


@pytest.mark.parametrize("setting, message", [
    ('classifiers.fuse=[["pool/none", "layer1/avg"]]', "whole maps .* cannot be fused"),
    ('classifiers.fuse=[["pool/avg"]]', "fuses fewer than two tables"),
    ("classifiers.fuse_width=-1", "classifiers.fuse_width = -1 must be at least 0"),
    ("classifiers.ensemble=-2", "classifiers.ensemble = -2 must be at least 0"),
])
def test_bad_fuse_and_ensemble_settings_exit_2_naming_the_key(cli, config, setting, message):
    code, _, err = cli("fit", "-c", config, "--set", setting)
    assert code == 2 and err.count("\n") == 1  # a config error
    assert re.search(message, err), err


@pytest.mark.parametrize("folds, expected", [(5, ["pool/ridge", "layer1/ridge", "pool/logreg"]), (1, ["pool/ridge"])])
def test_learning_curves_are_of_the_best_three_cells_or_the_best_alone_at_scale(folds, expected):
    rows = [{"backbone": "resnet50", "tap": tap, "pooling": "avg", "classifier": name, "cv_accuracy": cv, "depth": 1,
             "cv_folds": folds} for tap, name, cv in [("pool", "ridge", 0.9), ("layer1", "ridge", 0.85),
                                                      ("pool", "logreg", 0.8), ("layer1", "logreg", 0.7)]]
    assert [f"{row['tap']}/{row['classifier']}" for row in classifiers.curve_rows(rows)] == expected
