"""Fitting a zoo pipeline in row blocks, for codes too large to hold in memory at once.

Only estimators with ``partial_fit`` can learn this way (``sgd`` in the zoo). The pipeline
must come from ``make_model(..., incremental=True)``, whose preprocessing steps learn in
blocks as well (``StandardScaler`` and ``IncrementalPCA`` have ``partial_fit``; ``l2`` and
``ssqrt`` learn nothing). Each stateful step takes one pass over the blocks, seeing them
through the steps before it; then the estimator takes ``epochs`` passes.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
from sklearn.pipeline import Pipeline

from features.errors import SettingError

__all__ = ["fit_in_blocks"]


def fit_in_blocks(
    model: Pipeline,
    blocks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
    classes: np.ndarray,
    epochs: int = 5,
) -> Pipeline:
    """Fit ``model`` from ``blocks()``, which yields ``(X, y)`` row blocks on each call.

    Parameters
    ----------
    model : Pipeline
        Unfitted; every step has ``partial_fit`` or nothing to learn.
    blocks : callable
        Returns a fresh iterator over ``(X (n_rows, n_features), y (n_rows,))`` blocks, the
        whole training set in each pass (e.g. row ranges read from a store).
    classes : ndarray
        Every label that can occur, as ``partial_fit`` must know them on the first block.
    epochs : int
        Passes of the estimator over the blocks.
    """
    *transformers, (name, estimator) = model.steps
    if not hasattr(estimator, "partial_fit"):
        raise SettingError(f"{type(estimator).__name__} cannot learn in row blocks (no partial_fit); use sgd")

    def transform(X, steps):
        for _, step in steps:
            X = step.transform(X)
        return X

    for index, (_, step) in enumerate(transformers):
        if hasattr(step, "partial_fit"):
            for X, _ in blocks():
                step.partial_fit(transform(X, transformers[:index]))
        else:  # stateless (Normalizer, FunctionTransformer): fit only records the input shape
            X, _ = next(iter(blocks()))
            step.fit(transform(X, transformers[:index]))
    for _ in range(epochs):
        for X, y in blocks():
            estimator.partial_fit(transform(X, transformers), y, classes=classes)
    return model
