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
from typing import NamedTuple

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedGroupKFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter

from .tuning import Tuning
from .zoo import STEP, entry_for, estimator_params, make_model, param_grid

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


class _Plan(NamedTuple):
    """A search's work: ``fits`` fits on ``fit_rows`` rows, ``parallel`` at a time, then a
    refit of the best on every row (``refit``)."""

    fits: int
    fit_rows: int
    parallel: int
    refit: bool


def _announce(name: str, model: Pipeline, grid: dict, X: np.ndarray, y: np.ndarray, plan: _Plan) -> None:
    """Log how long the search and the refit of ``plan`` will take, when over ``ANNOUNCE_SECONDS``.

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

    total = -(-plan.fits // plan.parallel) * at(plan.fit_rows) + (at(len(y)) if plan.refit else 0.0)
    if total > ANNOUNCE_SECONDS:
        log.info("fit: %s on %d x %d codes: about %s (%d fits on %d rows%s; from fits on %d and %d rows)", name,
                 len(y), int(np.prod(X.shape[1:])), _duration(total), plan.fits, plan.fit_rows,
                 f", then the best on {len(y)}" if plan.refit else "", probe, 2 * probe)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def select_model(name: str, X: np.ndarray, y: np.ndarray, tuning: Tuning = Tuning(), groups: np.ndarray | None = None,
                 fixed: dict | None = None, views: np.ndarray | None = None,
                 blocks: list[tuple[str, int]] | None = None) -> Selection:
    """Grid-search zoo entry ``name`` on ``X`` ``(n_samples, n_features)``, ``y`` ``(n_samples,)``.

    Parameters
    ----------
    tuning : Tuning
        The preprocessing, the grid's overrides (``tuning.grid[name]``), the folds (fewer
        when the smallest class has fewer samples), the seed, the parallel fits, and:
        with more than ``tuning.tune_rows`` images the search runs on a stratified sample
        of that many (``tuning_rows``) and the chosen setting is refitted on every row.
        An entry that stops early on a held-out fold of its own (the torch heads) is tuned
        on that fold with ``tuning.head_folds = 1``: each setting fitted once on every row,
        scored on its held-out plain images, and the best is the model (no refit); by
        ``head_folds`` folds otherwise.
    groups : ndarray, (n_samples,), optional
        The image each row shows; rows of one image (augmented views) never straddle a split.
    fixed : dict, optional
        Parameters of the estimator set before the search and not searched (what a map
        head is built from: ``backbone``, ``tap``, ``weights``).
    views : ndarray of bool, (n_samples,), optional
        Rows that are augmented views: in the folds' training rows, never scored.
    blocks : list of (str, int), optional
        Fused codes: each part's name and width (``make_model``; ``tuning.fuse_width``).

    Settings whose fits fail score nothing (scikit-learn warns, naming the error); when
    every setting fails, the error is raised.
    """
    seed, held_out = tuning.seed, entry_for(name, len(y)).held_out
    model = make_model(name, tuning.preprocessing, seed, params=fixed, n_rows=len(y), blocks=blocks,
                       fuse_width=tuning.fuse_width)
    grid = param_grid(name, tuning.grid_of(name))
    chosen = _select_on_held_out(name, model, grid, X, y, groups, views) if held_out and tuning.head_folds == 1 \
        else None
    if chosen:
        return chosen
    sample = tuning_rows(y, tuning.tune_rows, seed, groups) if tuning.tune_rows else np.arange(len(y))
    cv_folds = tuning.head_folds if held_out and tuning.head_folds > 1 else tuning.cv_folds
    folds, cv, search_groups = cv_splits(y[sample], cv_folds, seed, _take(groups, sample), _take(views, sample))
    fits = len(ParameterGrid(grid)) * folds
    _announce(name, model, grid, X, y, _Plan(fits, round(len(sample) * (folds - 1) / folds),
                                             min(fits, effective_n_jobs(tuning.n_jobs)), refit=True))
    search = GridSearchCV(
        model,
        grid,
        scoring="accuracy",
        cv=cv,
        n_jobs=tuning.n_jobs,
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
    return Selection(
        model=best,
        params=estimator_params(search.best_params_),
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
    _announce(name, model, grid, X, y, _Plan(len(settings), len(y), 1, refit=False))
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
    return Selection(model=best, params=estimator_params(params),
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
