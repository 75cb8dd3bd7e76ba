"""Model selection: a zoo entry's grid searched by stratified k-fold CV, the best refitted.

The search sees only the training rows (the store's ``train`` split plus its ``val`` split
when it has one: k-fold over both uses every non-test image for choosing and for the final
fit, which beats one fixed validation split on the small data this tool is for). The test
rows never enter it. Augmented views of one image share a group: the folds keep groups
whole (``StratifiedGroupKFold``) and score the plain images only (views are training rows,
not what is measured), and a classifier that holds out rows of its own (the torch heads'
early stopping) gets the groups too.

At scale the search costs what the rows cost: with more than ``tune_rows`` training images
it runs on a stratified sample of that many (whole images with their views), and the
chosen setting is refitted on every row. Before a search that will take more than a
minute, one line says how long, estimated from two fits on small samples.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedGroupKFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter

from .preprocessing import DEFAULT_PREPROCESSING
from .zoo import STEP, entry_for, make_model, param_grid

__all__ = ["Selection", "cv_splits", "select_model", "tuning_rows"]

log = logging.getLogger(__name__)

PROBE_ROWS = 1_000
"""Rows of the smaller of the two timed fits that the time estimate extrapolates from
(fewer for fewer than 20,000 rows: a twentieth of them)."""
MIN_PROBE_ROWS = 200
"""Below 20 x this many rows no estimate is made: the searches are short, or their small
fits would say little."""
ANNOUNCE_SECONDS = 60.0
"""Searches estimated to take longer than this are announced."""


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
    tuned_rows: int | None = None
    """Rows the search ran on, when it ran on a sample of the training rows."""


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


def tuning_rows(y: np.ndarray, n_images: int, random_state: int, groups: np.ndarray | None = None) -> np.ndarray:
    """A stratified sample of ``n_images`` images (all rows of each: its augmented views
    too), as sorted row indices; every row when there are no more images than that."""
    images = np.arange(len(y)) if groups is None else np.unique(groups, return_index=True)[1]
    if len(images) <= n_images:
        return np.arange(len(y))
    try:
        chosen, _ = train_test_split(images, train_size=n_images, stratify=y[images], random_state=random_state)
    except ValueError:  # a class with a single image cannot be stratified: a plain seeded sample
        chosen = np.random.default_rng(random_state).choice(images, n_images, replace=False)
    if groups is None:
        return np.sort(chosen)
    return np.flatnonzero(np.isin(groups, groups[chosen]))


def _announce(name: str, model: Pipeline, grid: dict, X: np.ndarray, y: np.ndarray, fits: int, fit_rows: int,
              parallel: int, refit: bool) -> None:
    """Log how long the search (``fits`` fits on ``fit_rows`` rows, ``parallel`` at a time) and
    the refit on every row will take, when over ``ANNOUNCE_SECONDS``.

    From two fits of the grid's first setting, on ``PROBE_ROWS`` and twice as many rows:
    time grows as rows ** exponent, the exponent measured between them and kept between
    0.5 and the entry's ``cost_exponent`` (small fits carry fixed costs that big ones do not).
    """
    probe = min(PROBE_ROWS, len(y) // 20)  # the two probes cost at most 15 % of one fit on every row
    if probe < MIN_PROBE_ROWS:
        return
    setting = next(iter(ParameterGrid(grid)))
    seconds = []
    for rows in (tuning_rows(y, probe, 0), tuning_rows(y, 2 * probe, 0)):
        started = time.perf_counter()
        try:
            clone(model).set_params(**setting).fit(X[rows], y[rows])
        except (ValueError, ArithmeticError):  # a setting small samples cannot take: no estimate, and the search says
            return
        seconds.append(time.perf_counter() - started)
    measured = np.log2(max(seconds[1], 1e-6) / max(seconds[0], 1e-6))
    exponent = float(np.clip(measured, 0.5, entry_for(name, len(y)).cost_exponent))

    def at(rows: int) -> float:
        return seconds[1] * (rows / (2 * probe)) ** exponent

    total = -(-fits // parallel) * at(fit_rows) + (at(len(y)) if refit else 0.0)
    if total > ANNOUNCE_SECONDS:
        log.info("fit: %s on %d x %d codes: about %s (%d fits on %d rows%s; from fits on %d and %d rows)", name,
                 len(y), int(np.prod(X.shape[1:])), _duration(total), fits, fit_rows,
                 f", then the best on {len(y)}" if refit else "", probe, 2 * probe)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


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
    tune_rows: int | None = None,
    held_out: bool = True,
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
    tune_rows : int, optional
        Search on a stratified sample of this many images (``tuning_rows``) when there
        are more, then refit the chosen setting on every row. None: search on every row.
    held_out : bool
        Tune an entry that stops early on a held-out fold of its own (the torch heads) on
        that fold: each setting is fitted once on every row and scored on its held-out
        plain images, and the best is the model (no k folds, no refit). False: k folds.

    Settings whose fits fail score nothing (scikit-learn warns, naming the error); when
    every setting fails, the error is raised.
    """
    model = make_model(name, preprocessing, random_state, params=fixed, n_rows=len(y))
    grid = param_grid(name, grid)
    chosen = _select_on_held_out(name, model, grid, X, y, groups, views) if held_out and entry_for(
        name, len(y)).held_out else None
    if chosen:
        return chosen
    sample = tuning_rows(y, tune_rows, random_state, groups) if tune_rows else np.arange(len(y))
    folds, cv, search_groups = cv_splits(y[sample], cv_folds, random_state, _take(groups, sample),
                                         _take(views, sample))
    fits = len(ParameterGrid(grid)) * folds
    _announce(name, model, grid, X, y, fits, round(len(sample) * (folds - 1) / folds),
              min(fits, effective_n_jobs(n_jobs)), refit=True)
    search = GridSearchCV(
        model,
        grid,
        scoring="accuracy",
        cv=cv,
        n_jobs=n_jobs,
        refit=False,
        error_score=np.nan,  # a setting these data cannot take (k > fold size) loses, with a warning
    )
    started = time.perf_counter()
    search.fit(X[sample], y[sample], **_fit_params(model, search_groups, with_groups=True))
    if np.isnan(search.best_score_):
        raise ValueError(f"no setting of {name}'s grid {search.param_grid} could be fitted and scored on these "
                         f"data (the warnings above say why); change classifiers.grid.{name}")
    refit_started = time.perf_counter()
    best = clone(model).set_params(**search.best_params_)
    best.fit(X, y, **_fit_params(model, None if search_groups is None else groups))
    fit_seconds = time.perf_counter() - refit_started
    prefix = f"{STEP}__"
    return Selection(
        model=best,
        params={key.removeprefix(prefix): value for key, value in search.best_params_.items()},
        cv_accuracy=float(search.best_score_),
        candidates=len(search.cv_results_["params"]),
        folds=folds,
        search_seconds=time.perf_counter() - started,
        fit_seconds=fit_seconds,
        tuned_rows=len(sample) if len(sample) < len(y) else None,
    )


def _select_on_held_out(name: str, model: Pipeline, grid: dict, X: np.ndarray, y: np.ndarray,
                        groups: np.ndarray | None, views: np.ndarray | None) -> Selection | None:
    """Each setting fitted once on every row, scored on the plain images of the fold its
    early stopping held out (``validation_rows_``); the best fitted model is the result.
    None when the data are too few to hold any out: then k folds choose."""
    settings = list(ParameterGrid(grid))
    _announce(name, model, grid, X, y, len(settings), len(y), 1, refit=False)
    started = time.perf_counter()
    results = []
    for params in settings:
        candidate = clone(model).set_params(**params)
        fit_started = time.perf_counter()
        candidate.fit(X, y, **_fit_params(model, groups))
        seconds = time.perf_counter() - fit_started
        rows = candidate[STEP].validation_rows_
        if views is not None:
            rows = rows[~np.asarray(views, bool)[rows]]
        if not len(rows):
            return None
        results.append((float(np.mean(candidate.predict(X[rows]) == y[rows])), params, candidate, seconds))
    accuracy, params, best, seconds = max(results, key=lambda result: result[0])  # the first of equals
    prefix = f"{STEP}__"
    return Selection(model=best, params={key.removeprefix(prefix): value for key, value in params.items()},
                     cv_accuracy=accuracy, candidates=len(settings), folds=1,
                     search_seconds=time.perf_counter() - started, fit_seconds=seconds)


def _take(values: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if values is None else np.asarray(values)[rows]


def _fit_params(model: Pipeline, groups: np.ndarray | None, with_groups: bool = False) -> dict:
    """What a fit is given besides X and y when rows are grouped: the groups for the folds
    (a search, ``with_groups``), and for a classifier that holds out rows of its own."""
    if groups is None:
        return {}
    held_out = {f"{STEP}__groups": groups} if has_fit_parameter(model[STEP], "groups") else {}
    return {**({"groups": groups} if with_groups else {}), **held_out}
