"""The classifier zoo: named scikit-learn estimators to fit on CNN codes.

Each entry builds a fresh estimator from a seed, so that every (backbone, tap, pooling)
gets its own unfitted copy and results are reproducible. Features are standardised first:
CNN codes from different depths differ in scale by orders of magnitude, and both the
L-BFGS and liblinear solvers converge far faster on standardised inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

__all__ = ["ZooEntry", "ZOO", "make_classifier"]


@dataclass(frozen=True)
class ZooEntry:
    """A named classifier: ``build(random_state)`` returns an unfitted estimator."""

    name: str
    build: Callable[[int], BaseEstimator]
    description: str


ZOO: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in (
        ZooEntry(
            "logreg",
            lambda seed: make_pipeline(
                StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=seed)
            ),
            "multinomial logistic regression (L-BFGS, C=0.1) on standardised codes",
        ),
        ZooEntry(
            "linsvm",
            lambda seed: make_pipeline(
                StandardScaler(), LinearSVC(C=0.01, max_iter=5000, random_state=seed)
            ),
            "linear SVM (liblinear, one-vs-rest, C=0.01) on standardised codes",
        ),
    )
}


def make_classifier(name: str, random_state: int = 0) -> BaseEstimator:
    """A fresh unfitted estimator of zoo entry ``name``."""
    if name not in ZOO:
        raise ValueError(f"unknown classifier {name!r}; valid: {', '.join(ZOO)}")
    return ZOO[name].build(random_state)
