"""Test-split metrics of a fitted classifier: quality, its uncertainty, and what it costs to use.

An accuracy measured on n test images is a binomial proportion: ``wilson_interval`` gives
its 95 % interval (Wilson's score interval, which stays inside [0, 1] and keeps its
coverage near 0 and 1, where the normal approximation does not). Two classifiers scored on
the same test images are compared image by image (``mcnemar_pvalue``, McNemar's exact
test on the images exactly one of them gets right): paired, it separates much smaller
differences than two overlapping intervals would. Each row keeps which test images it got
right (``test_correct``, packed bits) so that any two rows can be compared later.
"""

from __future__ import annotations

import base64
import time

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    top_k_accuracy_score,
)

__all__ = ["METRICS", "CONFIDENCE", "wilson_interval", "mcnemar_pvalue", "pack_outcomes", "unpack_outcomes",
           "class_scores", "probability_method", "as_probabilities", "class_probabilities", "softmax", "score",
           "score_blocks"]

TOP_K = 5
CONFIDENCE = 0.95
"""Of the test accuracy's interval (``classifiers.report.CONFIDENCE`` is the same, for the ties)."""
METRICS = ("test_accuracy", "test_acc_low", "test_acc_high", "balanced_accuracy", "macro_f1", "top5_accuracy", "log_loss", "confusion_matrix",
           "predict_seconds_per_1000", "test_correct")
"""The keys of ``score``'s metrics, in order: what a model's sidecar records besides its cv accuracy."""


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval ``(low, high)`` of a proportion, ``successes`` of ``n``."""
    from scipy.stats import norm

    if n == 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + confidence / 2))
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def mcnemar_pvalue(first: np.ndarray, second: np.ndarray) -> float:
    """McNemar's exact two-sided p-value for two classifiers' outcomes on the same images.

    ``first``, ``second``: ``(n_images,)`` bool, right or wrong on each image. Only the
    images exactly one of them gets right count: under "equally good" each is the first's
    with probability 1/2 (a binomial test). 1.0 when they disagree on no image.
    """
    from scipy.stats import binomtest

    first, second = np.asarray(first, bool), np.asarray(second, bool)
    if first.shape != second.shape:
        raise ValueError(f"outcomes on {len(first)} and {len(second)} test images: the rows were not scored on the "
                         f"same test images")
    only_first, only_second = int(np.sum(first & ~second)), int(np.sum(second & ~first))
    if only_first + only_second == 0:
        return 1.0
    return float(binomtest(only_first, only_first + only_second, 0.5).pvalue)


def pack_outcomes(correct: np.ndarray) -> str:
    """``(n_images,)`` bool as text for ``results.json``: base64 of the packed bits (1,250 bytes for 10,000 images)."""
    return base64.b64encode(np.packbits(np.asarray(correct, bool)).tobytes()).decode("ascii")


def unpack_outcomes(text: str, n_images: int) -> np.ndarray:
    """The ``(n_images,)`` bool array ``pack_outcomes`` packed."""
    return np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8), count=n_images).astype(bool)


def class_scores(estimator, X: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(probabilities, scores)`` ``(n_samples, n_classes)``: probabilities where the
    estimator has ``predict_proba`` (else None), and the scores that rank the classes
    (the probabilities, or ``decision_function``; None when it has neither)."""
    if hasattr(estimator, "predict_proba"):
        probabilities = estimator.predict_proba(X)
        return probabilities, probabilities
    if hasattr(estimator, "decision_function"):
        return None, estimator.decision_function(X)
    return None, None


def probability_method(estimator) -> str:
    """The method whose output ``as_probabilities`` makes probabilities of: ``predict_proba``,
    or ``decision_function`` for estimators without probabilities (ridge, linear SVM)."""
    for method in ("predict_proba", "decision_function"):
        if hasattr(estimator, method):
            return method
    raise TypeError(f"{type(estimator).__name__} has neither predict_proba nor decision_function")


def as_probabilities(scores: np.ndarray, method: str) -> tuple[np.ndarray, str]:
    """``(probabilities, how)`` from the output of ``method`` (``probability_method``):
    ``(n_samples, n_classes)`` rows that sum to one, and how they were made. A softmax of
    decision scores ranks the classes as the scores do but is not calibrated."""
    if method == "predict_proba":
        return scores, method
    return softmax(scores), "softmax of decision_function"


def class_probabilities(estimator, X: np.ndarray) -> tuple[np.ndarray, str]:
    """``as_probabilities`` of ``estimator`` on ``X`` ``(n_samples, n_features)``."""
    method = probability_method(estimator)
    return as_probabilities(getattr(estimator, method)(X), method)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Rows of ``scores`` ``(n_samples, n_classes)`` as probabilities; a binary classifier's
    one score per sample ``(n_samples,)`` counts for the second class against the first."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = np.column_stack([-scores, scores]) / 2
    exponentials = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def score(estimator, X: np.ndarray, y: np.ndarray) -> dict:
    """Metrics of a fitted ``estimator`` on ``X`` ``(n_samples, n_features)``, ``y`` ``(n_samples,)``.

    Returns
    -------
    dict
        ``test_accuracy`` with its 95 % interval (``test_acc_low``, ``test_acc_high``:
        ``wilson_interval``), ``balanced_accuracy``, ``macro_f1``; ``top5_accuracy`` (with
        more than five classes) and ``log_loss`` (with probabilities), else None;
        ``confusion_matrix`` (rows: true class, columns: predicted, in ``estimator.classes_``
        order); ``predict_seconds_per_1000`` (of ``predict`` on ``X``); ``test_correct``
        (which test images it gets right, ``pack_outcomes``).
    """
    return score_blocks(estimator, [(X, y)])


def score_blocks(estimator, blocks) -> dict:
    """``score`` over ``(X, y)`` row blocks, for test rows too many to hold at once."""
    labels = estimator.classes_
    y, predicted, probabilities, scores, predict_seconds = [], [], [], [], 0.0
    for X_block, y_block in blocks:
        started = time.perf_counter()
        predicted.append(estimator.predict(X_block))
        predict_seconds += time.perf_counter() - started
        block_probabilities, block_scores = class_scores(estimator, X_block)
        y.append(y_block)
        probabilities.append(block_probabilities)
        scores.append(block_scores)
    y, predicted = np.concatenate(y), np.concatenate(predicted)
    probabilities = None if probabilities[0] is None else np.concatenate(probabilities)
    scores = None if scores[0] is None else np.concatenate(scores)
    unknown = sorted(int(label) for label in set(np.unique(y)) - set(labels))
    if unknown:
        raise ValueError(f"the test split has labels {unknown} that the training split lacks; every class needs training images")
    many = len(labels) > TOP_K and scores is not None
    correct = predicted == y
    low, high = wilson_interval(int(correct.sum()), len(y))
    return {
        "test_accuracy": float(accuracy_score(y, predicted)),
        "test_acc_low": low,
        "test_acc_high": high,
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, average="macro", labels=labels, zero_division=0)),
        "top5_accuracy": float(top_k_accuracy_score(y, scores, k=TOP_K, labels=labels)) if many else None,
        "log_loss": float(log_loss(y, probabilities, labels=labels)) if probabilities is not None else None,
        "confusion_matrix": confusion_matrix(y, predicted, labels=labels).tolist(),
        "predict_seconds_per_1000": 1000 * predict_seconds / len(y),
        "test_correct": pack_outcomes(correct),
    }
