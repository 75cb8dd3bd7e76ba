"""Model selection and test metrics on small synthetic codes."""

import numpy as np
import pytest
from sklearn.datasets import make_classification

from classifiers import METRICS, Tuning, mcnemar_pvalue, score, select_model, unpack_outcomes, wilson_interval


@pytest.fixture(scope="module")
def codes():
    X, y = make_classification(n_samples=300, n_features=15, n_informative=8, n_classes=7, n_clusters_per_class=1,
                               class_sep=2.0, random_state=0)
    return X.astype(np.float32), y


def test_grid_search_picks_a_setting_by_stratified_cv_and_refits_it(codes):
    X, y = codes
    chosen = select_model("logreg", X, y, Tuning(grid={"logreg": {"C": [1e-6, 1.0]}}, cv_folds=3, n_jobs=1))
    assert chosen.params == {"C": 1.0}  # C=1e-6 cannot learn anything
    assert chosen.candidates == 2 and chosen.folds == 3
    assert 0.7 < chosen.cv_accuracy <= 1
    assert chosen.model.named_steps["classifier"].C == 1.0
    assert chosen.model.n_features_in_ == 15  # refitted on all rows given
    assert chosen.fit_seconds > 0 and chosen.search_seconds >= chosen.fit_seconds


def test_parallel_search_finds_the_same_setting(codes):
    X, y = codes
    serial = select_model("ridge", X, y, Tuning(cv_folds=3, n_jobs=1))
    parallel = select_model("ridge", X, y, Tuning(cv_folds=3, n_jobs=2))
    assert serial.params == parallel.params and serial.cv_accuracy == pytest.approx(parallel.cv_accuracy)


def test_folds_shrink_to_the_smallest_class_and_a_lone_sample_is_refused():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.array([0] * 17 + [1] * 3)
    assert select_model("ridge", X, y, Tuning(cv_folds=5, n_jobs=1)).folds == 3
    with pytest.raises(ValueError, match="a class has only 1 training sample; cross-validation needs at least 2"):
        select_model("ridge", X, np.array([0] * 19 + [1]), Tuning(n_jobs=1))


def test_a_setting_the_data_cannot_take_loses_with_a_warning_and_all_failing_is_an_error(codes):
    X, y = codes
    with pytest.warns(UserWarning, match="non-finite"):
        chosen = select_model("knn", X[:60], y[:60], Tuning(grid={"knn": {"n_neighbors": [3, 500]}}, cv_folds=3, n_jobs=1))
    assert chosen.params["n_neighbors"] == 3
    with pytest.raises(ValueError, match="no setting of knn's grid .* could be fitted and scored"), \
            pytest.warns(UserWarning):
        select_model("knn", X[:60], y[:60], Tuning(grid={"knn": {"n_neighbors": [500]}}, cv_folds=3, n_jobs=1))


def test_metrics_with_probabilities_and_many_classes(codes):
    X, y = codes
    model = select_model("logreg", X[:200], y[:200], Tuning(cv_folds=3, n_jobs=1)).model
    metrics = score(model, X[200:], y[200:])
    assert tuple(metrics) == METRICS  # what a model's sidecar records
    assert metrics["test_accuracy"] == pytest.approx(np.mean(model.predict(X[200:]) == y[200:]))
    assert 0 < metrics["macro_f1"] <= 1 and 0 < metrics["balanced_accuracy"] <= 1
    assert metrics["test_accuracy"] <= metrics["top5_accuracy"] <= 1  # 7 classes: top-5 applies
    assert metrics["log_loss"] > 0
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (7, 7) and matrix.sum() == 100 and np.trace(matrix) == round(100 * metrics["test_accuracy"])
    assert metrics["predict_seconds_per_1000"] > 0
    low, high = wilson_interval(round(100 * metrics["test_accuracy"]), 100)
    assert metrics["test_acc_low"] == low < metrics["test_accuracy"] < high == metrics["test_acc_high"]
    assert np.array_equal(unpack_outcomes(metrics["test_correct"], 100), model.predict(X[200:]) == y[200:])


def test_wilson_interval_and_mcnemar_against_known_values():
    assert wilson_interval(894, 1000) == pytest.approx((0.8734, 0.9116), abs=1e-4)  # Wilson 1927, by hand
    assert wilson_interval(0, 10)[0] == 0 and wilson_interval(10, 10)[1] == pytest.approx(1)  # inside [0, 1], unlike p +- 2 se
    right = np.ones(100, bool)
    other = right.copy()
    other[:6] = False  # wrong on 6 images the first gets right, right on none it gets wrong
    assert mcnemar_pvalue(right, other) == pytest.approx(2 * 0.5**6)  # exact binomial, two-sided
    assert mcnemar_pvalue(right, right) == 1.0
    other[90:92] = False
    right[90:92] = False  # agreeing mistakes do not count
    assert mcnemar_pvalue(right, other) == pytest.approx(2 * 0.5**6)
    with pytest.raises(ValueError, match="same test images"):
        mcnemar_pvalue(right, right[:50])


def test_metrics_without_probabilities_or_with_few_classes(codes):
    X, y = codes
    svm = select_model("linsvm", X[:200], y[:200], Tuning(cv_folds=3, n_jobs=1)).model
    metrics = score(svm, X[200:], y[200:])
    assert metrics["log_loss"] is None  # no predict_proba
    assert metrics["top5_accuracy"] is not None  # ranked by decision_function
    few = y < 3
    logreg = select_model("logreg", X[few], y[few], Tuning(cv_folds=3, n_jobs=1)).model
    assert score(logreg, X[few], y[few])["top5_accuracy"] is None


def test_test_labels_unseen_in_training_are_refused(codes):
    X, y = codes
    model = select_model("ridge", X[y < 6], y[y < 6], Tuning(cv_folds=3, n_jobs=1)).model
    with pytest.raises(ValueError, match=r"the test split has labels \[6\] that the training split lacks"):
        score(model, X, y)


def test_regularisation_paths_score_what_separate_fits_score(codes):
    from sklearn.model_selection import GridSearchCV

    from classifiers import ZOO, make_model
    from classifiers.paths import path_scores
    from classifiers.selection import cv_splits

    X, y = codes
    for rows in (np.arange(len(y)), np.flatnonzero(y < 2)):  # many classes, and two (one ridge target column)
        _, splits, _ = cv_splits(y[rows], 3, 0)
        for name, param, values in (("ridge", "alpha", [1e4, 10.0, 1e-2]), ("logreg", "C", [1e-4, 0.1, 10.0])):
            model = make_model(name)
            walked = path_scores(model, ZOO[name].path, param, values, X[rows], y[rows], splits)
            search = GridSearchCV(model, {f"classifier__{param}": values}, cv=splits).fit(X[rows], y[rows])
            separate = np.array([search.cv_results_[f"split{fold}_test_score"] for fold in range(3)])
            np.testing.assert_allclose(walked, separate, atol=1.5 / len(splits[0][1]))  # one image at most


def test_wide_grids_are_searched_fast_and_say_their_spread(codes):
    X, y = codes
    chosen = select_model("logreg", X, y, Tuning(cv_folds=3, n_jobs=1))
    assert chosen.candidates == 23 and 1e-6 <= chosen.params["C"] <= 1e5  # Kornblith et al.'s range
    assert 0 < chosen.cv_std < 0.2
    ridge = select_model("ridge", X, y, Tuning(cv_folds=3, n_jobs=1))
    assert ridge.candidates == 33


@pytest.mark.parametrize("fixed", [{"class_weight": "balanced"}, {"fit_intercept": False}])
def test_a_ridge_its_closed_form_cannot_solve_is_scored_by_its_own_fits(fixed):
    """The ridge path knows no class weights and always fits an intercept: with either
    setting each alpha is fitted as set, so the score is that of the model refitted."""
    from sklearn.model_selection import GridSearchCV

    from classifiers import make_model, selection_splits

    X, y = make_classification(n_samples=300, n_features=15, n_informative=6, n_classes=3, weights=[0.8, 0.15, 0.05],
                               shift=3.0, class_sep=0.8, random_state=0)
    alphas = [1e4, 1e2, 1.0]
    tuning = Tuning(cv_folds=3, n_jobs=1, grid={"ridge": {"alpha": alphas, **fixed}})
    chosen = select_model("ridge", X, y, tuning)
    splits, _ = selection_splits(y, tuning)
    search = GridSearchCV(make_model("ridge", params=fixed), {"classifier__alpha": alphas}, cv=splits).fit(X, y)
    assert chosen.params["alpha"] == search.best_params_["classifier__alpha"]
    assert chosen.cv_accuracy == pytest.approx(search.best_score_)
