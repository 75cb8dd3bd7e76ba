"""Fit zoo classifiers on cached codes and score them once on the test split."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.metrics import accuracy_score

from features.store import FeatureStore, StoreError

from .zoo import make_classifier

__all__ = ["train_test_codes", "fit_and_score"]


def train_test_codes(store: FeatureStore, tap: str, pooling: str):
    """The train and test rows of one codes dataset, read from the file once.

    Returns
    -------
    X_train : ndarray, (n_train, n_features) float32
    y_train : ndarray, (n_train,) int64
    X_test : ndarray, (n_test, n_features) float32
    y_test : ndarray, (n_test,) int64
    """
    codes, labels = store.codes(tap, pooling)
    train, test = store.splits == "train", store.splits == "test"
    if not train.any() or not test.any():
        raise StoreError(
            f"{store.path} has {train.sum()} train and {test.sum()} test samples; both splits "
            f"need images (check the split folders, or data.test_size)"
        )
    return codes[train], labels[train], codes[test], labels[test]


def fit_and_score(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    classifier: str,
    random_state: int = 0,
) -> tuple[BaseEstimator, dict]:
    """Fit zoo entry ``classifier`` on the training rows and score it on the test rows.

    Returns
    -------
    estimator : fitted scikit-learn estimator
    record : dict
        ``classifier, n_features, n_train, n_test, test_accuracy, fit_seconds``.
    """
    estimator = make_classifier(classifier, random_state)
    started = time.perf_counter()
    estimator.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - started
    record = {
        "classifier": classifier,
        "n_features": int(X_train.shape[1]),
        "n_train": len(X_train),
        "n_test": len(X_test),
        "test_accuracy": float(accuracy_score(y_test, estimator.predict(X_test))),
        "fit_seconds": round(fit_seconds, 3),
    }
    return estimator, record
