"""Model selection: a zoo entry's grid searched by stratified k-fold CV, the best refitted.

The search sees only the training rows (the store's ``train`` split plus its ``val`` split
when it has one: k-fold over both uses every non-test image for choosing and for the final
fit, which beats one fixed validation split on the small data this tool is for). The test
rows never enter it. Augmented views of one image share a group: the folds keep groups
whole (``StratifiedGroupKFold``) and score the plain images only (views are training rows,
not what is measured), and a classifier that holds out rows of its own (the torch heads'
early stopping) gets the groups too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter

from .preprocessing import DEFAULT_PREPROCESSING
from .zoo import STEP, make_model, param_grid

__all__ = ["Selection", "cv_splits", "select_model"]


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


def _folds(y: np.ndarray, cv_folds: int, groups: np.ndarray | None) -> int:
    """``cv_folds``, lowered to the images of the smallest class (the stratified folds' limit)."""
    if groups is not None:  # views of one image count once
        _, first = np.unique(groups, return_index=True)
        y = y[first]
    smallest = int(np.bincount(y)[np.unique(y)].min())
    if smallest < 2:
        raise ValueError(
            f"a class has only {smallest} training sample; cross-validation needs at least 2 per class "
            f"(add images, or lower data.test_size)"
        )
    return min(cv_folds, smallest)


def cv_splits(y: np.ndarray, cv_folds: int, random_state: int, groups: np.ndarray | None = None,
              views: np.ndarray | None = None) -> tuple[int, list, np.ndarray | None]:
    """The folds of the search: ``(number of folds, [(train rows, scored rows)], groups)``.

    Stratified k-fold, shuffled; with ``groups`` (several rows of an image) group-aware,
    and rows that are augmented views (``views``) train but are not scored. ``groups`` comes
    back None when every row is its own image.
    """
    if groups is not None and len(set(groups)) == len(groups):
        groups = None  # one row per image: the plain folds, as without views
    folds = _folds(y, cv_folds, groups)
    rows = np.zeros(len(y))
    if groups is None:
        return folds, list(StratifiedKFold(folds, shuffle=True, random_state=random_state).split(rows, y)), None
    scored = np.ones(len(y), bool) if views is None else ~np.asarray(views, bool)
    splits = StratifiedGroupKFold(folds, shuffle=True, random_state=random_state).split(rows, y, groups)
    return folds, [(train, test[scored[test]]) for train, test in splits], groups


def select_model(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    preprocessing: list[str] = DEFAULT_PREPROCESSING,
    grid: dict | None = None,
    cv_folds: int = 5,
    n_jobs: int | None = None,
    random_state: int = 0,
    groups: np.ndarray | None = None,
    fixed: dict | None = None,
    views: np.ndarray | None = None,
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
    groups : ndarray, (n_samples,), optional
        The image each row shows; rows of one image (augmented views) never straddle a split.
    fixed : dict, optional
        Parameters of the estimator set before the search and not searched (what a map
        head is built from: ``backbone``, ``tap``, ``weights``).
    views : ndarray of bool, (n_samples,), optional
        Rows that are augmented views: in the folds' training rows, never scored.

    Settings whose fits fail score nothing (scikit-learn warns, naming the error); when
    every setting fails, the error is raised.
    """
    folds, cv, groups = cv_splits(y, cv_folds, random_state, groups, views)
    model = make_model(name, preprocessing, random_state, params=fixed)
    search = GridSearchCV(
        model,
        param_grid(name, grid),
        scoring="accuracy",
        cv=cv,
        n_jobs=n_jobs,
        refit=True,
        error_score=np.nan,  # a setting these data cannot take (k > fold size) loses, with a warning
    )
    started = time.perf_counter()
    if groups is None:
        search.fit(X, y)
    else:
        held_out = {f"{STEP}__groups": groups} if has_fit_parameter(model[STEP], "groups") else {}
        search.fit(X, y, groups=groups, **held_out)
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
