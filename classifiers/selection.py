"""Model selection: a zoo entry's grid searched by stratified k-fold CV, the best refitted.

The search sees only the training rows (the store's ``train`` split plus its ``val`` split
when it has one: k-fold over both uses every non-test image for choosing and for the final
fit, which beats one fixed validation split on the small data this tool is for). The test
rows never enter it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from .preprocessing import DEFAULT_PREPROCESSING
from .zoo import STEP, make_model, param_grid

__all__ = ["Selection", "select_model"]


@dataclass
class Selection:
    """The refitted best pipeline of one grid search and what the search found."""

    model: Pipeline
    params: dict
    cv_accuracy: float
    candidates: int
    folds: int
    search_seconds: float
    fit_seconds: float


def _folds(y: np.ndarray, cv_folds: int) -> int:
    """``cv_folds``, lowered to the size of the smallest class (StratifiedKFold's limit)."""
    smallest = int(np.bincount(y)[np.unique(y)].min())
    if smallest < 2:
        raise ValueError(
            f"a class has only {smallest} training sample; cross-validation needs at least 2 per class "
            f"(add images, or lower data.test_size)"
        )
    return min(cv_folds, smallest)


def select_model(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    preprocessing: list[str] = DEFAULT_PREPROCESSING,
    grid: dict | None = None,
    cv_folds: int = 5,
    n_jobs: int | None = None,
    random_state: int = 0,
) -> Selection:
    """Grid-search zoo entry ``name`` on ``X`` ``(n_samples, n_features)``, ``y`` ``(n_samples,)``.

    Parameters
    ----------
    grid : dict, optional
        Overrides of the entry's default grid, ``{"C": [0.1, 1.0]}``.
    cv_folds : int
        Folds of the stratified CV (fewer when the smallest class has fewer samples).
    n_jobs : int or None
        Parallel fits through joblib (``-1``: all cores).

    Settings whose fits fail score nothing (scikit-learn warns, naming the error); when
    every setting fails, the error is raised.
    """
    folds = _folds(y, cv_folds)
    search = GridSearchCV(
        make_model(name, preprocessing, random_state),
        param_grid(name, grid),
        scoring="accuracy",
        cv=StratifiedKFold(folds, shuffle=True, random_state=random_state),
        n_jobs=n_jobs,
        refit=True,
        error_score=np.nan,  # a setting these data cannot take (k > fold size) loses, with a warning
    )
    started = time.perf_counter()
    search.fit(X, y)
    if np.isnan(search.best_score_):
        raise ValueError(f"no setting of {name}'s grid {search.param_grid} could be fitted and scored on these "
                         f"data (the warnings above say why); change classifiers.grid.{name}")
    prefix = f"{STEP}__"
    return Selection(
        model=search.best_estimator_,
        params={key.removeprefix(prefix): value for key, value in search.best_params_.items()},
        cv_accuracy=float(search.best_score_),
        candidates=len(search.cv_results_["params"]),
        folds=folds,
        search_seconds=time.perf_counter() - started,
        fit_seconds=search.refit_time_,
    )
