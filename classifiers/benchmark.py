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

from features import FeatureStore, StoreError, read_codes

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
    """

    X_fit: np.ndarray
    y_fit: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_val: int
    classes: list[str]
    spec: dict


def load_codes(path: str | Path, tap: str, pooling: str) -> Codes:
    """Read the train, val and test codes of ``tap``/``pooling`` from the store at ``path``."""
    with FeatureStore(path) as store:
        classes, attrs = store.classes, store.attrs
    X_train, y_train = read_codes(path, tap, pooling, "train")
    X_val, y_val = read_codes(path, tap, pooling, "val")
    X_test, y_test = read_codes(path, tap, pooling, "test")
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
) -> dict:
    """Tune zoo entry ``name`` by CV on the fit rows, score the best once on test, save it.

    Returns
    -------
    dict
        A results row: classifier, preprocessing, params (the chosen setting), sizes,
        ``cv_accuracy``, the metrics of ``classifiers.metrics.score``, ``search_seconds``,
        ``fit_seconds`` (the refit of the best setting), ``model_bytes`` and ``model``
        (the joblib path).
    """
    chosen = select_model(name, codes.X_fit, codes.y_fit, preprocessing, grid, cv_folds, n_jobs, random_state)
    metrics = score(chosen.model, codes.X_test, codes.y_test)
    row = {
        "classifier": name,
        "preprocessing": "+".join(preprocessing) or "none",
        "params": chosen.params,
        "n_features": int(codes.X_fit.shape[1]),
        "n_train": len(codes.y_fit) - codes.n_val,
        "n_val": codes.n_val,
        "n_test": len(codes.y_test),
        "cv_folds": chosen.folds,
        "candidates": chosen.candidates,
        "cv_accuracy": chosen.cv_accuracy,
        **metrics,
        "search_seconds": round(chosen.search_seconds, 3),
        "fit_seconds": round(chosen.fit_seconds, 3),
    }
    save_model(
        chosen.model, model_path, codes.spec, {key: row[key] for key in ("cv_accuracy", *metrics)},
        classifier=name, params=chosen.params, preprocessing=list(preprocessing), classes=codes.classes,
    )
    row["model_bytes"] = Path(model_path).stat().st_size
    row["model"] = str(model_path)
    params = ", ".join(f"{key}={value}" for key, value in chosen.params.items())
    log.info("fit: %s %s/%s %s [%s]: cv %.1f %%, test %.1f %% (%d settings x %d folds, %.1f s)",
             codes.spec.get("backbone", "?"), codes.spec["tap"], codes.spec["pooling"], name, params,
             100 * chosen.cv_accuracy, 100 * metrics["test_accuracy"], chosen.candidates, chosen.folds,
             chosen.search_seconds)
    return row
