"""Model selection on codes larger than memory: every fit and score reads the store in row blocks.

When the training codes of a (tap, pooling) exceed ``classifiers.memory_budget_gb``, the
zoo entries that can learn block by block (their estimator has ``partial_fit``: ``sgd``,
``linear-head``, ``mlp-head``) are tuned by the same stratified, group-aware k-fold search
as in memory, but each fit is ``fit_in_blocks`` over shuffled blocks read from the store
and each score reads its rows block by block. Memory is bounded by the block size, which
the budget sets, not by the number of rows.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.model_selection import ParameterGrid

from features.errors import SettingError

from .incremental import fit_in_blocks
from .metrics import score_blocks
from .tuning import Tuning
from .selection import Selection, cv_splits
from .zoo import STEP, estimator_params, make_model, param_grid

__all__ = ["BlockReader", "learns_in_blocks", "select_in_blocks"]

_COPIES = 4
"""Copies of a block alive at once while it is learnt from: the block read, and the
arrays each preprocessing step makes (signed square root, standardisation) and casts."""


def learns_in_blocks(name: str) -> bool:
    """Whether zoo entry ``name`` can learn block by block (its estimator has ``partial_fit``)."""
    return hasattr(make_model(name, [], incremental=True)[-1], "partial_fit")


class BlockReader:
    """Row blocks of one (tap, pooling) of an open ``FeatureStore``, sized to a memory budget.

    A block holds as many rows as fit ``budget_gb`` with the copies learning makes of it.
    """

    def __init__(self, store, tap: str, pooling: str, row_shape: tuple[int, ...], budget_gb: float):
        self.store, self.tap, self.pooling = store, tap, pooling
        self.max_rows = max(1, int(budget_gb * 1e9 / (_COPIES * 4 * int(np.prod(row_shape)))))

    def blocks(self, positions: np.ndarray, seed: int | None = None):
        return self.store.blocks(self.tap, self.pooling, positions, self.max_rows, seed)

    def most_blocks(self, n_rows: int) -> int:
        """The most blocks a pass over ``n_rows`` rows takes."""
        return self.store.most_blocks(n_rows, self.max_rows)


def _fit(name, params, reader, positions, classes, tuning: Tuning):
    """A fresh zoo pipeline with ``params`` (estimator parameters), learnt from shuffled blocks
    of ``positions`` in ``tuning.chunk_epochs`` passes. A head's learning-rate schedule
    spans those passes: its ``max_iter`` counts the ``partial_fit`` calls to come (at most;
    blocks vary a little with the shuffle)."""
    model = make_model(name, tuning.preprocessing, tuning.seed, incremental=True, params=params)
    if "learning_rate_schedule" in model[STEP].get_params():
        model[STEP].set_params(max_iter=tuning.chunk_epochs * reader.most_blocks(len(positions)))
    passes = iter(range(1_000_000))  # each pass over the blocks in a new order, from the seed
    return fit_in_blocks(model, lambda: reader.blocks(positions, seed=tuning.seed + next(passes)), classes,
                         tuning.chunk_epochs)


def select_in_blocks(name: str, reader: BlockReader, positions: np.ndarray, y: np.ndarray, tuning: Tuning = Tuning(),
                     groups: np.ndarray | None = None, views: np.ndarray | None = None,
                     fixed: dict | None = None) -> Selection:
    """``select_model`` for codes left in the store: zoo entry ``name``'s grid searched by
    stratified (group-aware) k-fold CV over the store rows at ``positions``, labels ``y``.

    Each fit takes ``tuning.chunk_epochs`` passes over the blocks of its training rows;
    validation rows that are augmented views (``views``) are not scored; ``fixed`` sets
    estimator parameters that are not searched. The best setting is refitted on every row.
    """
    if not learns_in_blocks(name):
        raise SettingError(f"{name} cannot learn from row blocks; for codes over classifiers.memory_budget_gb use "
                           f"sgd, linear-head or mlp-head, or raise the budget")
    folds, splits, _ = cv_splits(y, tuning.cv_folds, tuning.seed, groups, views)
    classes = np.unique(y)
    started = time.perf_counter()
    results = []
    for params in ParameterGrid(param_grid(name, tuning.grid_of(name))):
        params = estimator_params(params)
        accuracies = [
            score_blocks(_fit(name, {**(fixed or {}), **params}, reader, positions[train], classes, tuning),
                         reader.blocks(positions[test]))["test_accuracy"]
            for train, test in splits
        ]
        results.append((float(np.mean(accuracies)), params, float(np.std(accuracies))))
    cv_accuracy, best, cv_std = max(results, key=lambda result: result[0])  # the first of equals, as GridSearchCV
    refit_started = time.perf_counter()
    model = _fit(name, {**(fixed or {}), **best}, reader, positions, classes, tuning)
    return Selection(model=model, params=best, cv_accuracy=cv_accuracy, candidates=len(results), folds=folds,
                     search_seconds=time.perf_counter() - started, fit_seconds=time.perf_counter() - refit_started,
                     cv_std=cv_std)
