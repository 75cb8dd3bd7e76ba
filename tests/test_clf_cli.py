"""fit and report through the command line: tuned models, sidecars, results, plots, bad settings."""

import csv
import json

import numpy as np
import pytest

from classifiers import ModelFileError, load_model
from features import spec_of_store
from features import FeatureStore, read_codes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = ("--set", 'classifiers.models=["logreg", "knn", "linear-head"]', "--set", "classifiers.cv_folds=3",
        "--set", "classifiers.n_jobs=1")


@pytest.mark.filterwarnings("ignore::UserWarning:sklearn")  # knn's k=10 cannot score on 8-row folds
def test_fit_and_report_write_ranked_results_models_and_plots(image_folder, write_config, cli, tmp_path):
    config = write_config(f'root = "{image_folder}"')
    code, out, err = cli("run", "-c", config, *FAST, "--set", "data.val_size=0.2",
                         "--set", 'classifiers.grid.logreg.C=[0.01, 1.0]')
    assert code == 0, err
    assert "fit: resnet50 pool/avg logreg [C=" in err and "2 settings x 3 folds" in err  # one line per model

    run_dir = tmp_path / "runs" / "test"
    results = json.loads((run_dir / "results.json").read_text())
    rows = results["rows"]
    assert len(rows) == 2 * 3 and results["classes"] == ["cat", "dog"]
    assert rows[0]["best"] == "overall" and results["best_model"] == rows[0]["model"]
    assert [row["cv_accuracy"] for row in rows] == sorted((row["cv_accuracy"] for row in rows), reverse=True)
    for row in rows:
        assert (row["n_train"], row["n_test"]) == (8, 4) and row["n_val"] > 0  # val joins the CV, not the test
        assert row["model_bytes"] == (run_dir / row["model"]).stat().st_size > 0
        assert row["confusion_matrix"] and sum(map(sum, row["confusion_matrix"])) == 4
    assert {row["params"]["C"] for row in rows if row["classifier"] == "logreg"} <= {0.01, 1.0}

    with open(run_dir / "results.csv") as file:
        assert [r["model"] for r in csv.DictReader(file)] == [row["model"] for row in rows]
    assert "cv acc" in out and "overall" in out and "NOT transfer learning" in out
    report = (run_dir / "report.md").read_text()
    assert "![confusion matrix of the best model](confusion_matrix.png)" in report and "NOT transfer learning" in report
    for plot in ("accuracy_by_depth.png", "confusion_matrix.png"):
        assert (run_dir / plot).read_bytes()[:4] == b"\x89PNG"

    # what predict will do: the best model, checked against the features it is given
    (store_path,) = (tmp_path / "cache").glob("*.h5")
    best = rows[0]
    with FeatureStore(store_path) as store:
        attrs = store.attrs
    model, sidecar = load_model(run_dir / results["best_model"], spec_of_store(attrs, best["tap"], best["pooling"]))
    X, _ = read_codes(store_path, best["tap"], best["pooling"], "test")
    assert sidecar["classes"] == ["cat", "dog"] and sidecar["spec"]["n_features"] == X.shape[1]
    assert np.isin(model.predict(X), [0, 1]).all()
    other_tap = "layer1" if best["tap"] == "pool" else "pool"
    with pytest.raises(ModelFileError, match=f"tap: model '{best['tap']}', features '{other_tap}'"):
        load_model(run_dir / results["best_model"], spec_of_store(attrs, other_tap, best["pooling"]))


@pytest.mark.parametrize(
    "override, message",
    [
        ('classifiers.preprocessing=["pca"]', "classifiers.preprocessing = ['pca']: unknown preprocessing step 'pca'"),
        ("classifiers.models=mlp", "classifiers.models = 'mlp' is not valid"),
        ("classifiers.models=[]", "classifiers.models is empty; name at least one of logreg, linsvm"),
        ("classifiers.cv_folds=1", "classifiers.cv_folds = 1 must be at least 2"),
        ("classifiers.n_jobs=0", "classifiers.n_jobs = 0 must be -1 (all cores) or at least 1"),
        ("classifiers.holdout_rows=-1", "classifiers.holdout_rows = -1 must be at least 0 (0: always k-fold"),
        ("classifiers.grid.logreg.c=[1.0]", "classifiers.grid.logreg: logreg has no parameter 'c' (did you mean 'C'?)"),
        ("classifiers.grid.svm.C=[1.0]", "classifiers.grid = 'svm' is not valid (did you mean 'linsvm' or 'svm-rbf'?)"),
        ("classifiers.grid.logreg=3", "classifiers.grid.logreg = 3 must be a table of parameter = [values]"),
    ],
)
def test_bad_classifier_settings_exit_2_with_one_line(image_folder, write_config, cli, override, message):
    code, _, err = cli("fit", "-c", write_config(f'root = "{image_folder}"'), "--set", override)
    assert code == 2 and message in err and "Traceback" not in err
