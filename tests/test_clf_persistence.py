"""Saved models: joblib + sidecar, sha256 and feature-spec checks on load, prediction rows."""

import json

import numpy as np
import pytest
from sklearn.datasets import make_classification

from classifiers import ModelFileError, load_model, make_model, predict_table, save_model, score
from features import spec_of_store

STORE_ATTRS = {"backbone": "vgg16", "weights": "random(seed=0)", "weights_sha256": "", "image_size": 32,
               "preprocessing": json.dumps({"crop_size": [32], "mean": [0.5]}), "source": "images"}
CLASSES = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]


@pytest.fixture(scope="module")
def fitted():
    X, y = make_classification(n_samples=140, n_features=6, n_informative=4, n_classes=7, n_clusters_per_class=1,
                               class_sep=3.0, random_state=0)
    return make_model("logreg").fit(X, y), X, y


@pytest.fixture
def saved(fitted, tmp_path):
    model, X, y = fitted
    path = tmp_path / "models" / "pool3-avg-logreg.joblib"
    sidecar = save_model(model, path, spec_of_store(STORE_ATTRS, "pool3", "avg"), score(model, X, y),
                         classes=CLASSES, classifier="logreg", params={"C": 1.0}, preprocessing=["standard"])
    return path, sidecar


def test_round_trip_and_sidecar_fields(fitted, saved):
    model, X, _ = fitted
    path, sidecar_path = saved
    assert sidecar_path.name == "pool3-avg-logreg.joblib.json"
    loaded, sidecar = load_model(path, spec_of_store(STORE_ATTRS, "pool3", "avg"))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert sidecar == json.loads(sidecar_path.read_text())
    assert sidecar["spec"] == {"backbone": "vgg16", "weights": "random(seed=0)", "weights_sha256": "",
                               "preprocessing": {"crop_size": [32], "mean": [0.5]}, "tap": "pool3",
                               "pooling": "avg", "n_features": 6}
    assert sidecar["classes"] == CLASSES and sidecar["preprocessing"] == ["standard"]
    assert sidecar["bytes"] == path.stat().st_size and len(sidecar["sha256"]) == 64
    assert set(sidecar["versions"]) >= {"scikit-learn", "torch", "numpy", "joblib", "python"}
    assert sidecar["metrics"]["test_accuracy"] > 0.5
    assert not list(path.parent.glob("*.partial"))


def test_a_changed_model_file_is_not_unpickled(saved):
    path, _ = saved
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelFileError, match="does not match the sha256 in pool3-avg-logreg.joblib.json"):
        load_model(path)


def test_features_of_another_tap_or_weights_are_refused_naming_the_fields(saved):
    path, _ = saved
    other = spec_of_store({**STORE_ATTRS, "weights": "IMAGENET1K_V1"}, "pool4", "avg")
    with pytest.raises(ModelFileError) as error:
        load_model(path, other)
    message = str(error.value)
    assert "weights: model 'random(seed=0)', features 'IMAGENET1K_V1'" in message
    assert "tap: model 'pool3', features 'pool4'" in message
    assert "pooling" not in message and "backbone" not in message


def test_missing_files_are_named(saved, tmp_path):
    path, sidecar_path = saved
    with pytest.raises(ModelFileError, match="cannot read the sidecar of model .*nothing.joblib"):
        load_model(tmp_path / "nothing.joblib")
    path.unlink()
    with pytest.raises(ModelFileError, match="pool3-avg-logreg.joblib is missing"):
        load_model(path)


def test_predict_table_with_probabilities(fitted):
    model, X, _ = fitted
    rows = predict_table(model, X[:4], CLASSES, top_k=3)
    probabilities = model.predict_proba(X[:4])
    for row, p in zip(rows, probabilities):
        assert row["predicted"] == CLASSES[p.argmax()] == row["top_k"][0][0]
        assert row["probability"] == pytest.approx(p.max())
        assert [score for _, score in row["top_k"]] == pytest.approx(sorted(p, reverse=True)[:3])


def test_predict_table_without_probabilities():
    X, y = make_classification(n_samples=60, n_features=4, n_informative=2, n_redundant=0, random_state=0)
    model = make_model("linsvm").fit(X, y)  # binary: a one-column decision_function
    rows = predict_table(model, X, ["no", "yes"], top_k=5)
    assert [row["predicted"] for row in rows] == [["no", "yes"][label] for label in model.predict(X)]
    assert all(row["probability"] is None and len(row["top_k"]) == 2 for row in rows)
    assert all(row["top_k"][0][0] == row["predicted"] for row in rows)


def test_the_spec_is_compared_both_ways_with_defaults_for_what_is_left_out(fitted, tmp_path, saved):
    model, X, y = fitted
    plain = spec_of_store(STORE_ATTRS, "pool3", "avg")  # float32: no precision key
    bfloat16 = spec_of_store({**STORE_ATTRS, "precision": "bfloat16"}, "pool3", "avg")
    with pytest.raises(ModelFileError, match="precision: model 'float32', features 'bfloat16'"):
        load_model(saved[0], bfloat16)
    path = tmp_path / "bf16.joblib"
    save_model(model, path, bfloat16, score(model, X, y), classes=CLASSES)
    with pytest.raises(ModelFileError, match="precision: model 'bfloat16', features 'float32'"):
        load_model(path, plain)  # the default left out of the features' spec is still compared
    assert load_model(path, bfloat16)[1]["spec"]["precision"] == "bfloat16"
    assert load_model(saved[0], {**plain, "precision": "float32"})  # a default given explicitly matches
