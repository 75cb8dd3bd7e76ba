"""Predictions of a fitted model as table rows: the class, its probability, the top k."""

from __future__ import annotations

import numpy as np

from .metrics import class_scores

__all__ = ["predict_table"]


def predict_table(estimator, X: np.ndarray, classes: list[str], top_k: int = 5) -> list[dict]:
    """One dict per row of ``X`` ``(n_samples, n_features)``.

    Parameters
    ----------
    classes : list of str
        Class names, indexed by the labels the estimator predicts (the store's classes).

    Returns
    -------
    list of dict
        ``predicted`` (class name), ``probability`` (of that class; None for estimators
        without ``predict_proba``, such as ``linsvm``), ``top_k``: up to ``top_k``
        ``(class name, score)`` pairs, best first, where the score is the probability or,
        without one, the decision function's value.
    """
    predicted = estimator.predict(X)
    probabilities, scores = class_scores(estimator, X)
    labels = estimator.classes_
    if scores is not None and scores.ndim == 1:  # binary decision_function: score of labels[1]
        scores = np.column_stack([-scores, scores])
    rows = []
    for index, label in enumerate(predicted):
        row = {"predicted": classes[label], "probability": None, "top_k": []}
        if probabilities is not None:
            row["probability"] = float(probabilities[index, np.searchsorted(labels, label)])
        if scores is not None:
            best = np.argsort(-scores[index], kind="stable")[:top_k]
            row["top_k"] = [(classes[labels[column]], float(scores[index, column])) for column in best]
        rows.append(row)
    return rows
