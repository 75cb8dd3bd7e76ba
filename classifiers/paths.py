"""Regularisation paths: every value of one parameter scored on a split in one pass.

A wide log grid (logistic regression's C from 1e-6 to 1e5, as the linear-probe protocols
search) costs little more than a short one when the fits along it share their work, which
scikit-learn's grid search cannot do (it clones a fresh estimator for each value). Here,
per split, the preprocessing is fitted once and then:

- ``warm_start``: the estimator is refitted value after value, each fit starting from the
  previous one's solution (``warm_start=True``; the grid lists the strongest regularisation
  first, where fits are quick, so each later one starts near its answer), as
  ``LogisticRegressionCV`` walks its path;
- ``ridge``: one eigendecomposition of the training codes' Gram (or kernel) matrix, after
  which each alpha's predictions cost one small product: the same solution as
  ``RidgeClassifier`` (centred codes, targets of -1 and 1), the trick behind
  ``RidgeClassifierCV``'s efficient leave-one-out, used here on the shared splits so that
  ridge is scored like every other classifier.

``path_scores`` returns the accuracy of every value on every split, as a grid search's
``cv_results_`` would. A path stands in for the estimator's own fits only where it gives
their solution (``walks``): the closed form of ridge knows no class weights, so a ridge
with ``class_weight = "balanced"`` is grid-searched instead.
"""

from __future__ import annotations

import warnings
from typing import Callable, NamedTuple

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelBinarizer

__all__ = ["PATHS", "Path", "path_scores", "walks"]


def _warm_start(estimator, param: str, values: list, X, y, X_val, y_val) -> list[float]:
    estimator.set_params(warm_start=True)
    scores = []
    with warnings.catch_warnings():
        # the weakly regularised end of a wide path stops at max_iter on separable codes: it is
        # scored as fitted; the refit of the chosen value still warns if it does not converge
        warnings.simplefilter("ignore", ConvergenceWarning)
        for value in values:
            estimator.set_params(**{param: value}).fit(X, y)
            scores.append(float(np.mean(estimator.predict(X_val) == y_val)))
    return scores


def _ridge(estimator, param: str, values: list, X, y, X_val, y_val) -> list[float]:
    X, X_val = np.asarray(X, np.float64), np.asarray(X_val, np.float64)
    binarizer = LabelBinarizer(neg_label=-1, pos_label=1)
    targets = binarizer.fit_transform(y).astype(np.float64)
    mean, target_mean = X.mean(axis=0), targets.mean(axis=0)
    X, X_val, targets = X - mean, X_val - mean, targets - target_mean
    if X.shape[0] >= X.shape[1]:  # primal: (X'X + a I) w = X'y through the eigenvectors of X'X
        eigenvalues, vectors = np.linalg.eigh(X.T @ X)
        left, right = X_val @ vectors, vectors.T @ (X.T @ targets)
    else:  # dual: w = X' (XX' + a I)^-1 y
        eigenvalues, vectors = np.linalg.eigh(X @ X.T)
        left, right = (X_val @ X.T) @ vectors, vectors.T @ targets
    eigenvalues = np.clip(eigenvalues, 0, None)
    scores = []
    for alpha in values:
        decision = (left / (eigenvalues + alpha)) @ right + target_mean
        predicted = binarizer.classes_[(decision[:, 0] > 0).astype(int) if decision.shape[1] == 1
                                       else decision.argmax(axis=1)]
        scores.append(float(np.mean(predicted == y_val)))
    return scores


def _solves_ridge(estimator) -> bool:
    """``_ridge`` is ``RidgeClassifier``'s solution with an intercept, without class weights
    or a sign constraint (the solver and its tolerance only decide how it is reached)."""
    return bool(estimator.fit_intercept) and estimator.class_weight is None and not estimator.positive


class Path(NamedTuple):
    """How a path is walked, and which estimators' fits it reproduces."""

    walk: Callable
    solves: Callable[[object], bool] = lambda estimator: True  # the estimator's own fits, warm-started


PATHS = {"warm_start": Path(_warm_start), "ridge": Path(_ridge, _solves_ridge)}
"""The paths, by the name a zoo entry gives (``ZooEntry.path``)."""


def walks(kind: str, model: Pipeline) -> bool:
    """Whether path ``kind`` scores what ``model`` (a zoo pipeline, its fixed settings set) would fit."""
    return bool(kind) and PATHS[kind].solves(model.steps[-1][1])


def _on_split(model: Pipeline, kind: str, param: str, values: list, X, y, train, test) -> list[float]:
    preprocessing = clone(Pipeline(model.steps[:-1])) if len(model.steps) > 1 else None
    X_train, X_test = X[train], X[test]
    if preprocessing is not None:
        X_train = preprocessing.fit_transform(X_train, y[train])
        X_test = preprocessing.transform(X_test)
    return PATHS[kind].walk(clone(model.steps[-1][1]), param, values, X_train, y[train], X_test, y[test])


def path_scores(model: Pipeline, kind: str, param: str, values: list, X: np.ndarray, y: np.ndarray,
                splits: list, n_jobs: int | None = None) -> np.ndarray:
    """Accuracy ``(n_splits, n_values)`` of ``model`` (a zoo pipeline) with its last step's
    ``param`` set to each of ``values``, trained on each split's training rows of ``X``
    ``(n_samples, n_features)`` and scored on its scored rows; the splits run in parallel."""
    scores = Parallel(n_jobs=n_jobs)(
        delayed(_on_split)(model, kind, param, values, X, y, train, test) for train, test in splits)
    return np.array(scores)
