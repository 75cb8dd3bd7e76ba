"""One benchmark cell: a zoo entry tuned, fitted, scored once on test and saved.

``load_codes`` reads the codes of one (store, tap, pooling) through ``features``' reader
API, once for every classifier fitted on them; ``benchmark_model`` turns them and a zoo
name into a results row and a saved model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features import FeatureStore, StoreError

from .heads import TorchClassifier
from .metrics import score
from .persistence import feature_spec, save_model
from .preprocessing import DEFAULT_PREPROCESSING
from .selection import select_model

__all__ = ["Codes", "load_codes", "benchmark_model"]

log = logging.getLogger(__name__)


@dataclass
class Codes:
    """The codes of one tap and pooling, split for fitting and testing.

    ``X_fit`` / ``y_fit`` are the train rows and the val rows (when the store has a val
    split; see ``classifiers.selection``); ``X_test`` / ``y_test`` the test rows.
    ``groups_fit`` names the image each fit row shows: augmented views share their image's,
    so that no image is on both sides of a cross-validation split; ``views_fit`` marks the
    augmented views (trained on, never scored).
    """

    X_fit: np.ndarray
    y_fit: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_val: int
    classes: list[str]
    spec: dict
    groups_fit: np.ndarray | None = None
    views_fit: np.ndarray | None = None

    @property
    def n_views(self) -> int:
        """Augmented rows among the fit rows (``features.views`` per training image)."""
        return 0 if self.views_fit is None else int(self.views_fit.sum())


def load_codes(path: str | Path, tap: str, pooling: str) -> Codes:
    """Read the train, val and test codes of ``tap``/``pooling`` from the store at ``path``."""
    with FeatureStore(path) as store:
        classes, attrs = store.classes, store.attrs
        X_train, y_train = store.codes(tap, pooling, "train")
        X_val, y_val = store.codes(tap, pooling, "val")
        X_test, y_test = store.codes(tap, pooling, "test")
        fit_rows = np.concatenate([np.flatnonzero(store.splits == split) for split in ("train", "val")])
        groups = store.groups[fit_rows]
        views = np.asarray(store.ids, dtype=object)[fit_rows] != groups  # a view's id is not its image's
    if not len(y_train) or not len(y_test):
        raise StoreError(
            f"{path} has {len(y_train)} train and {len(y_test)} test samples; both splits need images "
            f"(check the split folders, or data.test_size)"
        )
    return Codes(
        X_fit=np.concatenate([X_train, X_val]),
        y_fit=np.concatenate([y_train, y_val]),
        X_test=X_test,
        y_test=y_test,
        n_val=len(y_val),
        classes=classes,
        spec=feature_spec(attrs, tap, pooling),
        groups_fit=groups,
        views_fit=views,
    )


def benchmark_model(
    codes: Codes,
    name: str,
    model_path: str | Path,
    preprocessing: list[str] = DEFAULT_PREPROCESSING,
    grid: dict | None = None,
    cv_folds: int = 5,
    n_jobs: int | None = None,
    random_state: int = 0,
    fixed: dict | None = None,
) -> dict:
    """Tune zoo entry ``name`` by CV on the fit rows, score the best once on test, save it.

    ``fixed`` sets estimator parameters that are not searched (``select_model``).

    Returns
    -------
    dict
        A results row: classifier, preprocessing, params (the chosen setting), sizes,
        ``cv_accuracy``, the metrics of ``classifiers.metrics.score``, ``search_seconds``,
        ``fit_seconds`` (the refit of the best setting), ``epochs`` (of the refit, for
        the torch heads; else None), ``model_bytes`` and ``model`` (the joblib path).
    """
    chosen = select_model(name, codes.X_fit, codes.y_fit, preprocessing, grid, cv_folds, n_jobs, random_state,
                          codes.groups_fit, fixed, codes.views_fit)
    metrics = score(chosen.model, codes.X_test, codes.y_test)
    chain = [step for step, _ in chosen.model.steps[:-1]]  # none for a map head
    row = {
        "classifier": name,
        "preprocessing": "+".join(chain) or "none",
        "params": chosen.params,
        "n_features": int(np.prod(codes.X_fit.shape[1:])),
        "n_train": len(codes.y_fit) - codes.n_val,
        "n_views": codes.n_views,
        "n_val": codes.n_val,
        "n_test": len(codes.y_test),
        "cv_folds": chosen.folds,
        "candidates": chosen.candidates,
        "cv_accuracy": chosen.cv_accuracy,
        **metrics,
        "search_seconds": round(chosen.search_seconds, 3),
        "fit_seconds": round(chosen.fit_seconds, 3),
        "epochs": chosen.model[-1].n_iter_ if isinstance(chosen.model[-1], TorchClassifier) else None,
    }
    save_model(
        chosen.model, model_path, codes.spec, {key: row[key] for key in ("cv_accuracy", *metrics)},
        classifier=name, params=chosen.params, preprocessing=chain, classes=codes.classes,
    )
    row["model_bytes"] = Path(model_path).stat().st_size
    row["model"] = str(model_path)
    params = ", ".join(f"{key}={value}" for key, value in chosen.params.items())
    log.info("fit: %s %s/%s %s [%s]: cv %.1f %%, test %.1f %% (%d settings x %d folds, %.1f s)",
             codes.spec.get("backbone", "?"), codes.spec["tap"], codes.spec["pooling"], name, params,
             100 * chosen.cv_accuracy, 100 * metrics["test_accuracy"], chosen.candidates, chosen.folds,
             chosen.search_seconds)
    return row
