"""Model selection: a zoo entry's grid scored on the splits every classifier shares, the best refitted.

The search sees only the training rows (the store's ``train`` split plus its ``val`` split
when it has one: k-fold over both uses every non-test image for choosing and for the final
fit, which beats one fixed validation split on the small data this tool is for). The test
rows never enter it. Augmented views of one image share a group: the folds keep groups
whole (``StratifiedGroupKFold``) and score the plain images only (views are training rows,
not what is measured), and a classifier that holds out rows of its own (the torch heads'
early stopping) gets the groups too.

Every classifier of a table is scored by the same estimate on the same rows, so that their
scores can be compared (``selection_splits``): below ``Tuning.holdout_rows`` images (10,000)
by the same stratified k folds, the torch heads included; one held-out fold of a few
hundred images reads a head's accuracy points away from its test accuracy
(``benchmarks/RESULTS.md``), enough to win the pick by luck. From there on one held-out
tenth of the images, the same for all, is over a thousand images: the heads stop early on
it and are scored on it without a refit, the others are fitted on the rest (on a sample
of ``tune_rows`` of them) and refitted on every row.

Wide log grids cost little: an entry with a ``path`` walks its grid as a regularisation
path (``classifiers.paths``), an entry that ``refine``s searches coarse to fine. Before a
search that will take more than a minute, one line says how long, estimated from two fits
on small samples.
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

from features.errors import SettingError

from .paths import path_scores, walks
from .tuning import Tuning
from .zoo import STEP, entry_for, estimator_params, make_model, param_grid

__all__ = ["Selection", "HOLDOUT_FOLDS", "cv_splits", "grouped_fit_params", "on_held_out", "select_model",
           "selection_splits", "tuning_rows"]

log = logging.getLogger(__name__)

PROBE_ROWS = 1_000
"""Rows of the smaller of the two timed fits that the time estimate extrapolates from
(fewer for fewer than 20,000 rows: a twentieth of them)."""
MIN_PROBE_ROWS = 200
"""Below 20 x this many rows no estimate is made: the searches are short, or their small
fits would say little."""
ANNOUNCE_SECONDS = 60.0
"""Searches estimated to take longer than this are announced."""
HOLDOUT_FOLDS = 10
"""At scale (``Tuning.holdout_rows``) one fold of this many is held out: a tenth of the
images, as the torch heads' own early stopping holds out (``validation_fraction``)."""


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
    cv_std: float | None = None
    """The standard deviation of the best setting's accuracy across the folds (None with one split)."""


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
                 part_widths: list[tuple[str, int]] | None = None) -> Selection:
    """Grid-search zoo entry ``name`` on ``X`` ``(n_samples, n_features)``, ``y`` ``(n_samples,)``.

    Every classifier is scored by the same estimate on the same rows (``selection_splits``):
    below ``tuning.holdout_rows`` images by the same stratified k folds (the torch heads
    too, each fold's head stopping early on a fold carved from its training rows), from
    there on one shared held-out tenth of the images. There a torch head (an entry that
    stops early on a held-out fold) is fitted once per setting on every row, stopping
    early on that shared fold and scored on it, and the best fitted head is the model (no
    refit); the others are fitted on the other rows (a stratified sample of
    ``tuning.tune_rows`` of them when there are more) and the best setting is refitted on
    every row. ``tuning.head_folds`` of 2 or more scores the heads by that many folds
    whatever the size.

    Parameters
    ----------
    tuning : Tuning
        The preprocessing, the grid's overrides (``tuning.grid[name]``), the folds (fewer
        when the smallest class has fewer samples), the seed, the parallel fits.
    groups : ndarray, (n_samples,), optional
        The image each row shows; rows of one image (augmented views) never straddle a split.
    fixed : dict, optional
        Parameters of the estimator set before the search and not searched (what a map
        head is built from: ``backbone``, ``tap``, ``weights``).
    views : ndarray of bool, (n_samples,), optional
        Rows that are augmented views: in the splits' training rows, never scored.
    part_widths : list of (str, int), optional
        Fused codes: each part's name and width (``make_model``; ``tuning.fuse_width``).

    An entry with a ``path`` walks its one-parameter grid as a regularisation path
    (``classifiers.paths``); an entry that ``refine``s searches again beside its best
    value. Equal scores go to the setting listed first (the more regularised: grids list
    the strongest first). Settings whose fits fail score nothing (scikit-learn warns,
    naming the error); when every setting fails, the error is raised.
    """
    seed, entry = tuning.seed, entry_for(name, len(y))
    model = make_model(name, tuning.preprocessing, seed, params=fixed, n_rows=len(y), part_widths=part_widths,
                       fuse_width=tuning.fuse_width)
    grid = param_grid(name, tuning.grid_of(name))
    splits, search_groups = selection_splits(y, tuning, groups, views, kfold=entry.held_out and tuning.head_folds > 1)
    on_held_out = entry.held_out and len(splits) == 1
    if on_held_out:  # the heads' own early stopping watches the shared fold: fitted on every row, no refit
        held = np.setdiff1d(np.arange(len(y)), splits[0][0])
        evaluate = _held_out_evaluator(model, X, y, groups, held, splits[0][1])
        plan = _Plan(len(ParameterGrid(grid)), len(y), 1, refit=False)
    else:
        if len(splits) == 1 and tuning.tune_rows:  # the others train on a sample of the rows not held out
            train = splits[0][0]
            splits = [(train[tuning_rows(y[train], tuning.tune_rows, seed, _take(groups, train))], splits[0][1])]
        fixed_by_grid = {key: values[0] for key, values in grid.items() if len(values) == 1}
        path = entry.path if walks(entry.path, clone(model).set_params(**fixed_by_grid)) else ""
        evaluate = _cv_evaluator(path, model, X, y, splits, tuning.n_jobs,
                                 grouped_fit_params(model, search_groups, with_groups=True))
        walked = path and sum(len(values) > 1 for values in grid.values()) == 1  # a path costs about a fit
        fits = (1 if walked else len(ParameterGrid(grid))) * len(splits)
        plan = _Plan(fits, len(splits[0][0]), min(fits, effective_n_jobs(tuning.n_jobs)), refit=True)
    _announce(name, model, grid, X, y, plan)
    started = time.perf_counter()
    results = evaluate(grid)
    finer = _refined(grid, entry.refine, results) if entry.refine else {}
    if finer:
        results += evaluate(finer)
    scored = [result for result in results if not np.isnan(result.mean)]
    if not scored:
        raise SettingError(f"no setting of {name}'s grid {grid} could be fitted and scored on these data (the warnings "
                           f"above say why); change classifiers.grid.{name}")
    best = max(scored, key=lambda result: result.mean)  # the first of equals
    if on_held_out:
        model, fit_seconds = best.model, best.seconds
    else:
        refit_started = time.perf_counter()
        model = clone(model).set_params(**best.params)
        model.fit(X, y, **grouped_fit_params(model, None if search_groups is None else groups))
        fit_seconds = time.perf_counter() - refit_started
    searched = len(np.unique(np.concatenate([rows for split in splits for rows in split])))
    return Selection(
        model=model,
        params=estimator_params(best.params),
        cv_accuracy=best.mean,
        candidates=len(results),
        folds=len(splits),
        search_seconds=time.perf_counter() - started,
        fit_seconds=fit_seconds,
        tuned_rows=searched if searched < len(y) and not on_held_out else None,
        cv_std=best.std,
    )


def on_held_out(y: np.ndarray, tuning: Tuning, groups: np.ndarray | None = None) -> bool:
    """Whether ``y``'s images are many enough (``tuning.holdout_rows``) for every classifier
    to be scored on one shared held-out split rather than by k folds."""
    images = len(y) if groups is None else len(np.unique(groups))
    return bool(tuning.holdout_rows) and images >= tuning.holdout_rows


def selection_splits(y: np.ndarray, tuning: Tuning, groups: np.ndarray | None = None,
                     views: np.ndarray | None = None, kfold: bool = False) -> tuple[list, np.ndarray | None]:
    """The rows every classifier is trained and scored on: ``([(train rows, scored rows)], groups)``.

    Below ``tuning.holdout_rows`` images (or with ``kfold``): ``cv_splits`` of
    ``tuning.cv_folds`` (``head_folds`` with ``kfold``), on every row or, past
    ``tuning.tune_rows`` images, on a stratified sample of them. From there on: one split,
    a stratified (group-aware) tenth of the images held out (``HOLDOUT_FOLDS``), its plain
    images scored, the rest trained on. The splits depend on the labels, groups and seed
    only, so every classifier of a table gets the same ones. ``groups`` comes back None
    when every row is its own image.
    """
    if on_held_out(y, tuning, groups) and not kfold:
        _, folds, groups = cv_splits(y, HOLDOUT_FOLDS, tuning.seed, groups, views)
        return folds[:1], groups
    sample = tuning_rows(y, tuning.tune_rows, tuning.seed, groups) if tuning.tune_rows else np.arange(len(y))
    cv_folds = tuning.head_folds if kfold else tuning.cv_folds
    _, folds, found = cv_splits(y[sample], cv_folds, tuning.seed, _take(groups, sample), _take(views, sample))
    return [(sample[train], sample[test]) for train, test in folds], None if found is None else groups


class _Result(NamedTuple):
    """One setting's score: its mean (and standard deviation, None with one split) over
    the splits, and, on the held-out fold, the fitted model and its fit's seconds."""

    params: dict
    mean: float
    std: float | None
    model: Pipeline | None = None
    seconds: float = 0.0


def _cv_evaluator(path: str, model: Pipeline, X: np.ndarray, y: np.ndarray, splits: list, n_jobs,
                  fit_params: dict):
    """``grid -> [_Result]``: each setting trained and scored on every split; a path entry's
    one varying parameter walked along its path (``classifiers.paths``), a grid search otherwise."""

    def evaluate(grid: dict) -> list[_Result]:
        varying = [key for key, values in grid.items() if len(values) > 1]
        if path and len(varying) == 1:
            fixed = {key: values[0] for key, values in grid.items() if key != varying[0]}
            scores = path_scores(clone(model).set_params(**fixed), path, varying[0].removeprefix(f"{STEP}__"),
                                 grid[varying[0]], X, y, splits, n_jobs)
            return [_Result({**fixed, varying[0]: value}, float(column.mean()), _std(column))
                    for value, column in zip(grid[varying[0]], scores.T)]
        search = GridSearchCV(model, grid, scoring="accuracy", cv=splits, n_jobs=n_jobs, refit=False,
                              error_score=np.nan)  # a setting these data cannot take (k > fold size) loses, warned
        search.fit(X, y, **fit_params)
        folds = np.array([search.cv_results_[f"split{index}_test_score"] for index in range(len(splits))])
        return [_Result(params, float(mean), _std(column)) for params, mean, column in
                zip(search.cv_results_["params"], search.cv_results_["mean_test_score"], folds.T)]

    return evaluate


def _held_out_evaluator(model: Pipeline, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None,
                        held: np.ndarray, scored: np.ndarray):
    """``grid -> [_Result]``: each setting fitted once on every row, its early stopping
    watching the ``held`` rows, scored on their plain images (``scored``)."""

    def evaluate(grid: dict) -> list[_Result]:
        results = []
        for params in ParameterGrid(grid):
            candidate = clone(model).set_params(**params)
            started = time.perf_counter()
            candidate.fit(X, y, **grouped_fit_params(model, groups), **{f"{STEP}__validation_rows": held})
            seconds = time.perf_counter() - started
            results.append(_Result(params, float(np.mean(candidate.predict(X[scored]) == y[scored])), None,
                                   candidate, seconds))
        return results

    return evaluate


def _refined(grid: dict, name: str, results: list[_Result]) -> dict:
    """The second, finer round of a coarse-to-fine search of parameter ``name``: the
    geometric midpoints between the best value and its neighbours in the coarse grid,
    the other parameters at their best; an empty grid when there is nothing to refine."""
    key = f"{STEP}__{name}"
    values = sorted(value for value in grid.get(key, []) if isinstance(value, (int, float)) and value > 0)
    scored = [result for result in results if not np.isnan(result.mean)]
    if len(values) < 2 or not scored:
        return {}
    best = max(scored, key=lambda result: result.mean).params
    at = values.index(best[key])
    midpoints = [float(np.sqrt(best[key] * values[other])) for other in (at - 1, at + 1) if 0 <= other < len(values)]
    return {**{param: [value] for param, value in best.items()}, key: midpoints}


def _std(scores: np.ndarray) -> float | None:
    return float(np.std(scores)) if len(scores) > 1 else None


def _take(values: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if values is None else np.asarray(values)[rows]


def grouped_fit_params(model: Pipeline, groups: np.ndarray | None, with_groups: bool = False) -> dict:
    """What a fit is given besides X and y when rows are grouped: the groups for the folds
    (a search, ``with_groups``), and for a classifier that holds out rows of its own."""
    if groups is None:
        return {}
    held_out = {f"{STEP}__groups": groups} if has_fit_parameter(model[STEP], "groups") else {}
    return {**({"groups": groups} if with_groups else {}), **held_out}
