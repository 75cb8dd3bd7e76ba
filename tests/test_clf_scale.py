"""Model selection that scales with rows: searches on a sample then a refit on all rows, the
RBF SVM's form at scale, the time estimate, and the heads tuned on their own held-out fold."""

import logging

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.utils.estimator_checks import parametrize_with_checks

import classifiers.selection
import classifiers.zoo
from classifiers import Codes, Tuning, benchmark_model, format_table, select_model, selection_splits
from classifiers.kernels import NystroemClassifier
from classifiers.selection import tuning_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def codes():
    X, y = make_classification(n_samples=600, n_features=12, n_informative=8, n_classes=4, n_clusters_per_class=1,
                               class_sep=1.5, random_state=0)
    return X.astype(np.float32), y


@parametrize_with_checks([NystroemClassifier(n_components=20, random_state=0)])
def test_nystroem_classifier_is_a_scikit_learn_classifier(estimator, check):
    check(estimator)


def test_the_tuning_sample_is_stratified_and_keeps_an_images_views_together():
    y = np.repeat([0, 1, 2], [300, 200, 100])
    rows = tuning_rows(y, 60, random_state=0)
    assert len(rows) == 60 and np.bincount(y[rows]).tolist() == [30, 20, 10]
    assert len(tuning_rows(y, 1000, random_state=0)) == len(y)  # fewer images than asked: all

    groups = np.repeat(np.arange(300), 2)  # every image has a view
    rows = tuning_rows(np.repeat(y[::2], 2), 30, random_state=0, groups=groups)
    assert len(rows) == 60 and len(set(groups[rows])) == 30


def test_a_class_of_one_image_does_not_stop_the_sample_nor_the_estimate(monkeypatch, caplog):
    y = np.repeat([0, 1, 2], [300, 200, 1])
    assert len(tuning_rows(y, 60, random_state=0)) == 60  # not stratifiable: a plain seeded sample
    X, y = make_classification(n_samples=600, n_features=60, n_informative=8, n_classes=3, random_state=0)
    monkeypatch.setattr(classifiers.selection, "MIN_PROBE_ROWS", 20)
    monkeypatch.setattr(classifiers.selection, "ANNOUNCE_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="classifiers.selection"):
        chosen = select_model("ridge", X, y, Tuning(preprocessing=["pca40"], cv_folds=3, n_jobs=1))
    assert chosen.cv_accuracy > 0.5 and not caplog.records  # 40 components from the probe's 30 rows: no estimate


def test_a_search_on_a_sample_refits_the_chosen_setting_on_every_row(codes):
    X, y = codes
    chosen = select_model("logreg", X, y, Tuning(grid={"logreg": {"C": [1e-6, 1.0]}}, cv_folds=3, n_jobs=1, tune_rows=150))
    assert chosen.tuned_rows == 150 and chosen.params == {"C": 1.0}
    assert chosen.model.named_steps["standard"].n_samples_seen_ == len(y)  # the refit saw every row
    assert select_model("logreg", X, y, Tuning(cv_folds=3, n_jobs=1, tune_rows=10_000)).tuned_rows is None


def test_the_nystroem_form_takes_every_gamma_the_svm_grid_takes(codes, monkeypatch):
    X, y = codes
    monkeypatch.setattr(classifiers.zoo, "SCALE_ROWS", 400)
    chosen = select_model("svm-rbf", X, y, Tuning(grid={"svm-rbf": {"gamma": ["auto"]}}, cv_folds=3, n_jobs=1))
    assert isinstance(chosen.model[-1], NystroemClassifier) and chosen.params["gamma"] == "auto"
    fitted = NystroemClassifier(gamma="auto", n_components=50, random_state=0).fit(X, y)
    assert fitted.pipeline_.named_steps["nystroem"].gamma == 1 / X.shape[1]  # as SVC's "auto"
    with pytest.raises(ValueError, match="The 'C' parameter of NystroemClassifier must be a float"):
        NystroemClassifier(C=0).fit(X, y)


def test_past_scale_rows_the_rbf_svm_runs_as_nystroem_features_and_the_row_says_so(codes, monkeypatch, tmp_path):
    X, y = codes
    monkeypatch.setattr(classifiers.zoo, "SCALE_ROWS", 400)
    chosen = select_model("svm-rbf", X, y, Tuning(cv_folds=3, n_jobs=1))
    assert isinstance(chosen.model[-1], NystroemClassifier) and chosen.params["C"] in (1.0, 10.0, 100.0)
    assert chosen.cv_accuracy > 0.8
    exact = select_model("svm-rbf", X[:300], y[:300], Tuning(cv_folds=3, n_jobs=1))
    assert type(exact.model[-1]).__name__ == "SVC"

    data = Codes(X[:500], y[:500], X[500:], y[500:], n_val=0, classes=list("abcd"),
                 spec={"tap": "pool", "pooling": "avg"}, row_shape=(12,))
    row, _ = benchmark_model(data, "svm-rbf", Tuning(cv_folds=3, n_jobs=1))
    assert row["classifier"] == "svm-rbf" and row["method"].startswith("the RBF kernel approximated by Nystroem")
    table = format_table([{**row, "backbone": "b", "tap": "pool", "pooling": "avg", "predict_seconds_per_1000": 0.1}])
    assert "svm-rbf*" in table and table.splitlines()[-1].startswith("* svm-rbf: the RBF kernel approximated")


def test_a_long_search_is_announced_with_its_estimated_time(codes, monkeypatch, caplog):
    X, y = codes
    monkeypatch.setattr(classifiers.selection, "PROBE_ROWS", 100)
    monkeypatch.setattr(classifiers.selection, "MIN_PROBE_ROWS", 20)
    monkeypatch.setattr(classifiers.selection, "ANNOUNCE_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="classifiers.selection"):
        select_model("ridge", X, y, Tuning(cv_folds=3, n_jobs=1))  # its path: one decomposition per fold
    (line,) = [record.getMessage() for record in caplog.records]
    assert line.startswith("fit: ridge on 600 x 12 codes: about ") and "(3 fits on 400 rows, then the best on 600; " \
                                                                       "from fits on 30 and 60 rows)" in line
    monkeypatch.setattr(classifiers.selection, "ANNOUNCE_SECONDS", 3600.0)
    caplog.clear()
    select_model("ridge", X, y, Tuning(cv_folds=3, n_jobs=1))
    assert not caplog.records  # short: not announced


def test_heads_at_scale_are_tuned_on_the_shared_held_out_fold_one_fit_per_setting(codes, monkeypatch):
    X, y = codes
    fits = []
    fit = classifiers.heads.TorchHead.fit

    def counting(self, *args, **kwargs):
        fits.append(self.weight_decay)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(classifiers.heads.TorchHead, "fit", counting)
    grid = {"linear-head": {"max_iter": [30], "weight_decay": [1e-1, 1e-3]}}
    at_scale = Tuning(grid=grid, cv_folds=5, holdout_rows=500)  # 600 images: at scale
    chosen = select_model("linear-head", X, y, at_scale)
    assert fits[:2] == [1e-1, 1e-3] and fits[2] == pytest.approx(1e-2)  # coarse, then the midpoint beside the best
    assert chosen.folds == 1 and chosen.candidates == 3
    head = chosen.model[-1]
    rows = head.validation_rows_
    (shared,) = selection_splits(y, at_scale)[0]
    assert np.array_equal(rows, np.sort(shared[1])) and len(rows) == 60  # the tenth every classifier is scored on
    assert chosen.cv_accuracy == pytest.approx(np.mean(chosen.model.predict(X[rows]) == y[rows]))
    assert head.weight_decay == chosen.params["weight_decay"]  # the chosen fit is the model: no refit
    logreg = select_model("logreg", X, y, Tuning(cv_folds=5, holdout_rows=500, grid={"logreg": {"C": [0.1, 1.0]}}))
    assert logreg.folds == 1 and logreg.cv_std is None  # scored on the same tenth, then refitted

    fits.clear()
    small = select_model("linear-head", X, y, Tuning(grid=grid, cv_folds=3, n_jobs=1))  # 600 < 10,000 images
    assert small.folds == 3 and len(fits) == 3 * 3 + 1 and small.cv_std is not None  # k folds like the others, a refit
    fits.clear()
    kfold = select_model("linear-head", X, y, Tuning(grid=grid, cv_folds=5, head_folds=3, holdout_rows=500, n_jobs=1))
    assert kfold.folds == 3 and len(fits) == 3 * 3 + 1


def test_every_classifier_is_scored_on_the_same_folds(codes):
    X, y = codes
    tuning = Tuning(cv_folds=3, n_jobs=1)
    splits, _ = selection_splits(y, tuning)
    logreg = select_model("logreg", X, y, Tuning(cv_folds=3, n_jobs=1, grid={"logreg": {"C": [0.1]}}))
    head = select_model("linear-head", X, y, Tuning(cv_folds=3, n_jobs=1, grid={"linear-head": {
        "max_iter": [30], "weight_decay": [0.01]}}))
    for chosen, name, params in ((logreg, "logreg", {"C": 0.1}), (head, "linear-head", {"max_iter": 30,
                                                                                          "weight_decay": 0.01})):
        scores = []
        for train, scored in splits:  # each classifier's score is its mean over these very folds
            model = classifiers.make_model(name, params=params).fit(X[train], y[train])
            scores.append(np.mean(model.predict(X[scored]) == y[scored]))
        assert chosen.cv_accuracy == pytest.approx(np.mean(scores)) and chosen.cv_std == pytest.approx(np.std(scores))


def test_views_are_not_scored_on_the_held_out_fold(codes):
    X, y = codes
    X, y = np.concatenate([X, X + 0.01]), np.concatenate([y, y])
    groups = np.concatenate([np.arange(600), np.arange(600)]).astype(str)
    views = np.arange(1200) >= 600
    chosen = select_model("linear-head", X, y, Tuning(grid={"linear-head": {"max_iter": [20], "weight_decay": [0.01]}},
                                                      holdout_rows=500), groups=groups, views=views)
    rows = chosen.model[-1].validation_rows_
    assert views[rows].any() and not (set(groups[rows]) & set(np.delete(groups, rows)))  # whole images held out
    plain = rows[~views[rows]]
    assert chosen.cv_accuracy == pytest.approx(np.mean(chosen.model.predict(X[plain]) == y[plain]))
