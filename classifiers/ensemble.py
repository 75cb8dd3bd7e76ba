"""A stacked ensemble of the best cells: one more row of the table, one more model ``predict`` uses.

The members are the best cells of the best row's backbone by cross-validation accuracy
(up to ``classifiers.ensemble`` of them; cells fitted in row blocks, on whole maps, or
other ensembles are left out). Each member's chosen setting is cross-validated on the
training rows (the searches' folds, seed and ``tune_rows`` sample) for its out-of-fold
scores: probabilities, or decision values where it has none. A logistic regression
learns from those scores which member to trust for which class, as scikit-learn's
``StackingClassifier`` does. How many of the best cells to stack (two up to all) is chosen
by the cross-validated accuracy of that logistic regression on the out-of-fold scores,
and that accuracy is the row's ``cv_accuracy``: the test split is never looked at until
the ensemble is scored once, like every other row. From ``Tuning.holdout_rows`` images up,
where the other cells are scored on one held-out split, no ensemble is made: those k refits
would cost a fifth of the fit stage and give an estimate not comparable with the others'.

The model is a ``StackedCells`` estimator over the members' codes side by side (their
parts, each once: ``classifiers.fusion``'s naming and feature spec), and the members are
the cells' own fitted models: stacking refits nothing but the logistic regression.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from features import MAP
from features.errors import SettingError

from .cells import Cell, load_fused_codes
from .fusion import ENSEMBLE, fused_spec, joined_names, parts_of
from .metrics import probability_method, score
from .selection import cv_splits, grouped_fit_params, on_held_out, tuning_rows
from .tuning import Tuning
from .zoo import STEP

__all__ = ["StackedCells", "stack_cells"]

log = logging.getLogger(__name__)

def _columns(X: np.ndarray, ranges) -> np.ndarray:
    """The columns of ``X`` in ``ranges`` (``[(start, stop), ...]``), side by side: a view for one range."""
    if len(ranges) == 1:
        return X[:, slice(*ranges[0])]
    return np.hstack([X[:, slice(*span)] for span in ranges])


def _layout(part_lists: list, width_of: dict, order: list | None = None) -> tuple[list, list]:
    """The parts of ``part_lists`` each once (or in ``order``) side by side, and each list's
    column ranges in them: ``(parts, [[(start, stop), ...], ...])``."""
    parts = order or list(dict.fromkeys(part for listed in part_lists for part in listed))
    start = dict(zip(parts, np.cumsum([0, *[width_of[part] for part in parts[:-1]]]).tolist()))
    return parts, [[(start[part], start[part] + width_of[part]) for part in listed] for listed in part_lists]


def _scores(estimator, X: np.ndarray, method: str | None = None) -> np.ndarray:
    """``(n_samples, k)``: the probabilities, or decision values, that ``estimator`` gives ``X``."""
    values = getattr(estimator, method or probability_method(estimator))(X)
    return values.reshape(len(X), -1)


class StackedCells(ClassifierMixin, BaseEstimator):
    """Estimators on their own columns of ``X``, and a logistic regression on their scores.

    Parameters
    ----------
    members : list of (estimator, list of (int, int))
        Each member and the column ranges of ``X`` it takes, in order.
    cv : int
        Folds of the out-of-fold scores that ``fit`` trains the logistic regression on
        (fewer when a class has fewer samples).
    C : float
        Inverse regularisation of the logistic regression.
    random_state : int
        Of the folds.

    Attributes
    ----------
    members_ : list of fitted estimators
    final_estimator_ : LogisticRegression
    classes_ : ndarray, (n_classes,)
    """

    def __init__(self, members=(), cv: int = 5, C: float = 1.0, random_state: int = 0):
        self.members = members
        self.cv = cv
        self.C = C
        self.random_state = random_state

    def fit(self, X, y):
        """Each member's out-of-fold scores on ``X`` ``(n_samples, n_features)`` train the
        logistic regression; then each member is refitted on every row."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        if not self.members:
            raise SettingError("StackedCells needs members: [(estimator, [(start, stop)]), ...]")
        self.classes_ = np.unique(y)
        folds = StratifiedKFold(max(2, min(self.cv, int(np.bincount(np.searchsorted(self.classes_, y)).min()))),
                                shuffle=True, random_state=self.random_state)
        scores = [cross_val_predict(clone(member), _columns(X, ranges), y, cv=folds,
                                    method=probability_method(member)).reshape(len(y), -1)
                  for member, ranges in self.members]
        self.members_ = [clone(member).fit(_columns(X, ranges), y) for member, ranges in self.members]
        self.final_estimator_ = LogisticRegression(C=self.C, max_iter=1000).fit(np.hstack(scores), y)
        return self

    @classmethod
    def from_fitted(cls, members: list, final_estimator, n_features: int, **params) -> StackedCells:
        """A fitted ensemble of fitted ``members`` (``[(estimator, ranges)]``) and a fitted
        logistic regression on their scores, without refitting anything."""
        stacked = cls(members, **params)
        stacked.members_ = [member for member, _ in members]
        stacked.final_estimator_ = final_estimator
        stacked.classes_ = final_estimator.classes_
        stacked.n_features_in_ = n_features
        return stacked

    def _stacked_scores(self, X) -> np.ndarray:
        check_is_fitted(self, "final_estimator_")
        X = validate_data(self, X, reset=False)
        return np.hstack([_scores(member, _columns(X, ranges))
                          for member, (_, ranges) in zip(self.members_, self.members)])

    def predict_proba(self, X) -> np.ndarray:
        """``(n_samples, n_classes)``: the logistic regression's probabilities on the members' scores."""
        scores = self._stacked_scores(X)  # checks that it is fitted
        return self.final_estimator_.predict_proba(scores)

    def predict(self, X) -> np.ndarray:
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]


def _eligible(cell) -> bool:
    row = cell.row
    return row["classifier"] != ENSEMBLE and not row.get("out_of_core") and MAP not in row["pooling"].split("+")


def stack_cells(cells: list, stores: dict, tuning: Tuning = Tuning()):
    """The ensemble of the best cells (see the module's docstring) as a ``Cell``, or None
    when fewer than two cells can be stacked or their codes side by side are over
    ``tuning.memory_budget_gb``.

    Parameters
    ----------
    cells : list of Cell
        Best first (``benchmark``'s ranking, by cross-validation accuracy).
    stores : dict
        The feature stores by backbone.
    """
    backbone = cells[0].backbone
    candidates = [cell for cell in cells if cell.backbone == backbone and _eligible(cell)][:tuning.ensemble]
    if len(candidates) < 2:
        log.info("fit: no ensemble: fewer than two cells of %s can be stacked", backbone)
        return None
    started = time.perf_counter()
    store = stores[backbone]
    fit_rows = np.isin(store.splits, ("train", "val"))
    if on_held_out(store.labels[fit_rows], tuning, store.groups[fit_rows]):
        log.info("fit: no ensemble: at %d images or more (classifiers.holdout_rows) every cell is scored on one "
                 "held-out split, and the stacking's out-of-fold scores (k refits of each member on a sample) "
                 "would be neither comparable with those scores nor cheap; classifiers.holdout_rows = 0 stacks "
                 "anyway", tuning.holdout_rows)
        return None
    width_of = {part: int(np.prod(store.row_shape(*part))) for cell in candidates for part in parts_of(cell.spec)}
    union, ranges = _layout([parts_of(cell.spec) for cell in candidates], width_of)
    codes = load_fused_codes(store.path, union, tuning.memory_budget_gb)
    if not codes.in_memory:
        log.warning("fit: no ensemble: the codes of its members side by side are over classifiers.memory_budget_gb")
        return None
    y, groups = codes.y_fit, codes.groups_fit
    sample = tuning_rows(y, tuning.tune_rows, tuning.seed, groups) if tuning.tune_rows else np.arange(len(y))
    folds, splits, fold_groups = cv_splits(y[sample], tuning.cv_folds, tuning.seed, groups[sample])  # a partition
    scores = [cross_val_predict(clone(cell.model), _columns(codes.X_fit[sample], spans), y[sample], cv=splits,
                                method=probability_method(cell.model), n_jobs=tuning.n_jobs,
                                params=grouped_fit_params(cell.model, fold_groups)).reshape(len(sample), -1)
              for cell, spans in zip(candidates, ranges)]
    judged = ~codes.views_fit[sample]  # augmented views train the members; the images are what is measured
    meta_folds = StratifiedKFold(folds, shuffle=True, random_state=tuning.seed)
    accuracy = {size: float(np.mean(cross_val_score(LogisticRegression(max_iter=1000),
                                                    np.hstack(scores[:size])[judged], y[sample][judged],
                                                    cv=meta_folds)))
                for size in range(2, len(candidates) + 1)}
    size = max(accuracy, key=lambda key: (accuracy[key], -key))  # the fewest members of equals
    fit_started = time.perf_counter()
    final = LogisticRegression(max_iter=1000).fit(np.hstack(scores[:size])[judged], y[sample][judged])
    fit_seconds = time.perf_counter() - fit_started
    members = candidates[:size]
    used, member_ranges = _layout([parts_of(cell.spec) for cell in members], width_of)
    width = sum(width_of[part] for part in used)
    model = Pipeline([(STEP, StackedCells.from_fitted(list(zip([cell.model for cell in members], member_ranges)),
                                                      final, width, cv=folds, random_state=tuning.seed))])
    _, [in_union] = _layout([used], width_of, order=union)
    X_test = _columns(codes.X_test, in_union)
    metrics = score(model, X_test, codes.y_test)
    tap, pooling = joined_names(used)
    names = [f"{cell.tap}/{cell.pooling} {cell.classifier}" for cell in members]
    best = cells[0].row
    row = {
        "backbone": backbone, "weights": best["weights"], "pretrained": best["pretrained"], "tap": tap,
        "depth": max(cell.row["depth"] for cell in members), "pooling": pooling, "classifier": ENSEMBLE,
        "method": f"stacking: a logistic regression on the out-of-fold scores of the {size} best cells by cv",
        "preprocessing": "each member's", "params": {"members": names}, "n_features": width,
        "n_train": best["n_train"], "n_views": best["n_views"], "n_val": best["n_val"], "n_test": len(codes.y_test),
        "cv_folds": folds, "tuned_rows": len(sample) if len(sample) < len(y) else None,
        "candidates": len(accuracy), "cv_accuracy": accuracy[size], **metrics,
        "search_seconds": round(time.perf_counter() - started, 3), "fit_seconds": round(fit_seconds, 3),
        "epochs": None, "out_of_core": False, "model_bytes": None, "model": "",
    }
    log.info("fit: %s ensemble of %s: cv %.1f %%, test %.1f %%", backbone, ", ".join(names), 100 * accuracy[size],
             100 * metrics["test_accuracy"])
    return Cell(row, model, fused_spec(store.attrs, used))
