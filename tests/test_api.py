"""The Python API a notebook uses: features.extract, store.codes, classifiers.benchmark, Results, pipeline.run."""

import importlib
import json

import numpy as np
import pytest
from matplotlib.figure import Figure

import classifiers
import features
import pipeline

SMALL = dict(backbone="resnet50", taps=["layer1", "pool"], weights="random", image_size=32, batch_size=5,
             num_workers=0, progress=False)


def _files(folder):
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))


def test_extract_writes_the_stores_the_command_line_finds(image_folder, config, tmp_path, cli, forward_calls):
    store = features.extract(image_folder, cache_dir=tmp_path / "cache", **SMALL)
    assert isinstance(store, features.FeatureStore) and store.source.ids == store.ids
    X, y = store.codes("pool", "avg", split="train")
    assert X.shape == (12, 2048) and y.shape == (12,) and X.dtype == np.float32
    assert len(store.codes("layer1", "avg", split="test")[0]) == 4  # data.test_size = 0.25, stratified
    store.close()
    computed = len(forward_calls)
    code, _, _ = cli("extract", "-q", "-c", str(config))  # the same source, recipe and cache folder
    assert code == 0 and len(forward_calls) == computed  # everything cached: no CNN work
    stores = json.loads((tmp_path / "runs" / "test" / "features.json").read_text())
    assert stores["resnet50"]["store"] == str(store.path)


def test_extract_refuses_unknown_settings_by_name(image_folder, tmp_path):
    with pytest.raises(TypeError, match="unknown settings batchsize; valid: fast_decode, .*batch_size"):
        features.extract(image_folder, cache_dir=tmp_path, batchsize=4)
    with pytest.raises(FileNotFoundError, match="neither a folder .*, a manifest file, an ImageSource"):
        features.extract(tmp_path / "nowhere", cache_dir=tmp_path)


def test_arrays_get_a_seeded_split_and_a_store_of_their_own(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 24, 24, 3), dtype=np.uint8)
    labels = np.repeat([0, 1], 10)
    source = features.ImageArrays(images, labels)
    assert source.classes == ["0", "1"] and source.name.startswith("arrays-")
    assert (source.splits == "test").sum() == 5 and set(labels[source.splits == "test"]) == {0, 1}
    assert np.array_equal(features.ImageArrays(images, labels).splits, source.splits)  # seeded
    store = features.extract(source, cache_dir=tmp_path, **{**SMALL, "taps": ["layer1"]})
    other = features.extract(features.ImageArrays(images[::-1], labels), cache_dir=tmp_path,
                             **{**SMALL, "taps": ["layer1"]})
    assert store.path != other.path  # other images, another store: never each other's codes
    with pytest.raises(ValueError, match=r"images must be \(n_samples, height, width\[, 3\]\) with one label each"):
        features.ImageArrays(images, labels[:3])


@pytest.fixture
def store(image_folder, tmp_path):
    with features.extract(image_folder, cache_dir=tmp_path / "cache", **SMALL) as opened:
        yield opened


def test_benchmark_returns_results_and_writes_nothing(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path)
    results = classifiers.benchmark(store, models=["logreg", "ridge"], cv_folds=3, n_jobs=1, progress=False,
                                    fuse=[], ensemble=0)  # tests/test_fusion.py has the fused cells and ensembles
    assert _files(tmp_path) == before
    assert len(results.rows) == 4 and results.rows[0]["best"] == "overall"
    best = results.best
    assert (best.backbone, best.classifier) == ("resnet50", results.rows[0]["classifier"])
    assert best.tap in ("layer1", "pool") and best.pooling == "avg" and 0 <= best.test_accuracy <= 1
    X_test, y_test = store.codes(best.tap, best.pooling, split="test")
    predicted = best.model.predict(X_test)
    assert best.test_accuracy == pytest.approx(np.mean(predicted == y_test))
    assert isinstance(results.plot(), Figure)
    assert repr(results).splitlines()[1].split() == ["backbone", "tap", "pooling", "classifier", "setting",
                                                    "features", "cv", "acc", "test", "acc", "macro", "F1", "top-5",
                                                    "fit", "s", "ms/img", "tied", "best"]
    assert list(results.to_pandas()["classifier"]) == [row["classifier"] for row in results.rows]


def test_benchmark_refuses_unknown_models_and_settings(store):
    with pytest.raises(ValueError, match="models = 'logistic' is not valid; valid choices: logreg"):
        classifiers.benchmark(store, models=["logistic"])
    with pytest.raises(TypeError, match="unknown settings folds; valid: preprocessing, grid, cv_folds"):
        classifiers.benchmark(store, folds=3)
    with pytest.raises(ValueError, match="has no complete codes for layer2/avg"):
        classifiers.benchmark(store, codes=["layer2/avg"])
    with pytest.raises(ValueError, match="both hold resnet50 codes; benchmark them one at a time"):
        classifiers.benchmark([store, store.path])


def test_saved_results_are_what_fit_and_report_write(store, tmp_path, monkeypatch):
    results = classifiers.benchmark(store, models=["logreg"], codes=["pool/avg"], cv_folds=3, n_jobs=1,
                                    progress=False, seed=3)
    seeds = []
    review = importlib.import_module("classifiers.report")
    judge = review.find_suspects
    monkeypatch.setattr(review, "find_suspects",
                        lambda *args, **kwargs: seeds.append(kwargs["random_state"]) or judge(*args, **kwargs))
    saved = results.save(tmp_path / "run")
    assert seeds == [3]  # the suspect labels' folds follow the searches' seed
    written = _files(tmp_path / "run")
    for name in ("results.json", "results.csv", "report.md", "report.html", "accuracy_by_depth.png",
                 "models/resnet50/pool-avg-logreg.joblib", "models/resnet50/pool-avg-logreg.joblib.json"):
        assert name in written, name
    assert json.loads(saved.read_text())["best_model"] == "models/resnet50/pool-avg-logreg.joblib"
    again = classifiers.Results.load(tmp_path / "run")
    assert again.rows == results.rows and again.seed == json.loads(saved.read_text())["seed"] == 3  # the suspects' folds
    X, _ = store.codes("pool", "avg", split="test")
    np.testing.assert_array_equal(again.best.model.predict(X), results.best.model.predict(X))


def test_benchmark_gives_the_numbers_of_the_fit_stage(config, cli, run_dir):
    code, _, _ = cli("run", "-q", "-c", str(config))
    assert code == 0
    stage = json.loads((run_dir / "results.json").read_text())["rows"]
    stores = json.loads((run_dir / "features.json").read_text())
    results = classifiers.benchmark(stores["resnet50"]["store"], models=["logreg", "linsvm"], progress=False,
                                    fuse=[], ensemble=0)  # as the test config
    cell = lambda row: (row["tap"], row["pooling"], row["classifier"])  # noqa: E731 (ties rank by fit time)
    theirs = {cell(row): row for row in stage}
    assert len(results.rows) == len(stage) == 4
    for mine in results.rows:
        for key in ("params", "cv_accuracy", "test_accuracy", "confusion_matrix"):
            assert mine[key] == theirs[cell(mine)][key], key


def test_pipeline_run_brings_the_run_up_to_date_and_returns_its_results(config, run_dir, forward_calls):
    results = pipeline.run(config, set={"classifiers.models": ["logreg"], "classifiers.grid": {"logreg": {"C": 1.0}}},
                           progress=False)
    assert {row["classifier"] for row in results.rows} == {"logreg"}
    assert results.best.row["params"] == {"C": 1.0} and (run_dir / "report.html").is_file()
    stamps = {path.name: path.read_text() for path in (run_dir / ".stamps").glob("*")}
    computed = len(forward_calls)
    again = pipeline.run(config, set={"classifiers.models": ["logreg"], "classifiers.grid": {"logreg": {"C": 1.0}}},
                         progress=False)
    assert len(forward_calls) == computed and again.rows == results.rows  # up to date: nothing ran
    assert {path.name: path.read_text() for path in (run_dir / ".stamps").glob("*")} == stamps
    with pytest.raises(pipeline.ConfigError, match=r"unknown key 'modles' in \[classifiers\]"):
        pipeline.run(config, set={"classifiers.modles": ["logreg"]})


def test_equal_scores_give_the_same_best_whatever_the_clock(store, monkeypatch):
    """Ties in cv accuracy go to the simpler classifier, then the shallower tap, never to the faster fit."""
    settings = dict(models=["svm-rbf", "logreg", "ridge"], cv_folds=2, n_jobs=1, progress=False, fuse=[], ensemble=0)
    first = classifiers.benchmark(store, **settings)
    top = [row for row in first.rows if row["cv_accuracy"] == first.rows[0]["cv_accuracy"]]
    assert len(top) >= 3  # these images are easy: several cells reach the same score
    clock = iter(range(10**6, 0, -1))  # time runs backwards: every fit "takes" less than no time, in reverse order
    monkeypatch.setattr(importlib.import_module("classifiers.selection").time, "perf_counter",
                        lambda: float(next(clock)))
    second = classifiers.benchmark(store, **settings)
    assert [(row["tap"], row["classifier"]) for row in second.rows] == [(row["tap"], row["classifier"])
                                                                       for row in first.rows]
    assert (top[0]["classifier"], top[0]["tap"]) == min(((row["classifier"], row["tap"]) for row in top),
                                                        key=lambda key: (classifiers.SIMPLEST_FIRST.index(key[0]),
                                                                         key[1] != "layer1"))
