"""One benchmark cell: a zoo entry tuned, fitted and scored once on test.

``load_codes`` reads the codes of one (store, tap, pooling) through ``features``' reader
API, once for every classifier fitted on them; ``benchmark_model`` turns them and a zoo
name into a results row and a fitted model, which ``benchmark`` keeps as a ``Cell``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features import FeatureStore, StoreError

from .fusion import fused_spec
from .heads import TorchClassifier
from .metrics import score, score_blocks
from .outofcore import BlockReader, select_in_blocks
from .selection import select_model
from .tuning import Tuning
from .zoo import ZOO, entry_for

__all__ = ["Cell", "Codes", "load_codes", "load_fused_codes", "benchmark_model"]

log = logging.getLogger(__name__)


@dataclass
class Cell:
    """One tuned classifier on one (backbone, tap, pooling): its results row and fitted model."""

    row: dict
    model: object
    spec: dict

    backbone = property(lambda self: self.row["backbone"])
    tap = property(lambda self: self.row["tap"])
    pooling = property(lambda self: self.row["pooling"])
    classifier = property(lambda self: self.row["classifier"])
    test_accuracy = property(lambda self: self.row["test_accuracy"], doc="On the test split, 0 to 1.")
    cv_accuracy = property(lambda self: self.row["cv_accuracy"], doc="What chose it: on the training split.")

    def __repr__(self) -> str:
        return (f"Cell({self.backbone} {self.tap}/{self.pooling} {self.classifier}: "
                f"test accuracy {self.test_accuracy:.3f}, cv {self.cv_accuracy:.3f})")


@dataclass
class Codes:
    """The codes of one tap and pooling, split for fitting and testing.

    ``X_fit`` / ``y_fit`` are the train rows and the val rows (when the store has a val
    split; see ``classifiers.selection``); ``X_test`` / ``y_test`` the test rows.
    ``groups_fit`` names the image each fit row shows: augmented views share their image's,
    so that no image is on both sides of a cross-validation split; ``views_fit`` marks the
    augmented views (trained on, never scored). Codes larger than the memory budget stay
    in the store: ``X_fit`` and ``X_test`` are None, and ``store`` with the rows'
    positions in it (``positions_fit``, ``positions_test``) says where to read them.
    """

    X_fit: np.ndarray | None
    y_fit: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray
    n_val: int
    classes: list[str]
    spec: dict
    row_shape: tuple[int, ...]
    groups_fit: np.ndarray | None = None
    views_fit: np.ndarray | None = None
    store: Path | None = None
    positions_fit: np.ndarray | None = None
    positions_test: np.ndarray | None = None
    part_widths: list[tuple[str, int]] | None = None
    """Fused codes (``classifiers.fusion``): each part's name and width, in column order; None for one table."""

    @property
    def n_views(self) -> int:
        """Augmented rows among the fit rows (``features.views`` per training image)."""
        return 0 if self.views_fit is None else int(self.views_fit.sum())

    @property
    def in_memory(self) -> bool:
        return self.X_fit is not None


def load_codes(path: str | Path, tap: str, pooling: str, memory_budget_gb: float | None = None) -> Codes:
    """The train, val and test codes of ``tap``/``pooling`` in the store at ``path``: read
    into memory, or left in the store when the training rows' codes (as float32) would
    take more than ``memory_budget_gb``."""
    return load_fused_codes(path, [(tap, pooling)], memory_budget_gb)


def load_fused_codes(path: str | Path, parts: list[tuple[str, str]], memory_budget_gb: float | None = None) -> Codes:
    """``load_codes`` of several tables side by side (``classifiers.fusion``): each row holds
    the codes of ``parts`` in order, and ``part_widths`` names each part with its width.

    The tables are read one split of one part at a time into one array, so the fused
    codes are never held twice. Fused codes over the memory budget are left in the
    store like any others (``Codes.in_memory`` false).
    """
    fused = len(parts) > 1
    with FeatureStore(path) as store:
        fit_rows = np.concatenate([np.flatnonzero(store.splits == split) for split in ("train", "val")])
        test_rows = np.flatnonzero(store.splits == "test")
        shapes = [store.row_shape(*part) for part in parts]
        row_shape = (sum(int(np.prod(shape)) for shape in shapes),) if fused else shapes[0]
        if not (store.splits == "train").any() or not len(test_rows):
            raise StoreError(
                f"{path} has {int((store.splits == 'train').sum())} train and {len(test_rows)} test samples; both "
                f"splits need images (check the split folders, or data.test_size)"
            )
        fit_gb = len(fit_rows) * int(np.prod(row_shape)) * 4 / 1e9
        in_memory = memory_budget_gb is None or fit_gb <= memory_budget_gb
        name = "+".join("/".join(part) for part in parts)
        if in_memory:
            X_fit, X_test = _read_side_by_side(store, parts, ("train", "val")), _read_side_by_side(store, parts, ("test",))
        else:
            log.info("fit: %s: %.2f GB of training codes, over the memory budget of %g GB "
                     "(classifiers.memory_budget_gb): learning from the store in row blocks", name, fit_gb,
                     memory_budget_gb)
        groups = store.groups[fit_rows]
        return Codes(
            X_fit=X_fit if in_memory else None,
            y_fit=store.labels[fit_rows],
            X_test=X_test if in_memory else None,
            y_test=store.labels[test_rows],
            n_val=int((store.splits == "val").sum()),
            classes=store.classes,
            spec=fused_spec(store.attrs, parts),
            row_shape=row_shape,
            groups_fit=groups,
            views_fit=np.asarray(store.ids, dtype=object)[fit_rows] != groups,  # a view's id is not its image's
            store=None if in_memory else Path(path),
            positions_fit=None if in_memory else fit_rows,
            positions_test=None if in_memory else test_rows,
            part_widths=[("/".join(part), int(np.prod(shape))) for part, shape in zip(parts, shapes)] if fused
            else None,
        )


def _read_side_by_side(store: FeatureStore, parts: list[tuple[str, str]], splits: tuple[str, ...]) -> np.ndarray:
    """The codes of ``parts`` side by side for the rows of ``splits``, in that order: one
    table's rows kept whole (a map stays ``(n, C, H, W)``), several written into one array."""
    if len(parts) == 1:
        return np.concatenate([store.codes(*parts[0], split)[0] for split in splits])
    rows = int(np.isin(store.splits, splits).sum())
    X = np.empty((rows, sum(int(np.prod(store.row_shape(*part))) for part in parts)), np.float32)
    column = 0
    for part in parts:
        row = 0
        for split in splits:
            codes, _ = store.codes(*part, split)
            X[row:row + len(codes), column:column + codes.shape[1]] = codes
            row += len(codes)
        column += codes.shape[1]
    return X


def benchmark_model(codes: Codes, name: str, tuning: Tuning = Tuning(), fixed: dict | None = None) -> tuple[dict, object]:
    """Tune zoo entry ``name`` by CV on the fit rows (``select_model``), score the best once on test.

    ``fixed`` sets estimator parameters that are not searched. Codes left in the store
    (``Codes.in_memory`` false) are learnt from in row blocks (``select_in_blocks``), with
    ``tuning.chunk_epochs`` passes over them.

    Returns
    -------
    row : dict
        A results row: classifier, preprocessing, params (the chosen setting), sizes,
        ``cv_accuracy`` and ``cv_std`` (its standard deviation across the folds, None with
        one), the metrics of ``classifiers.metrics.score``, ``search_seconds``,
        ``fit_seconds`` (the refit of the best setting) and ``epochs`` (of the refit, for
        the torch heads; else None).
    model : Pipeline
        The fitted best setting.
    """
    entry = entry_for(name, len(codes.y_fit))
    if codes.in_memory:
        chosen = select_model(name, codes.X_fit, codes.y_fit, tuning, codes.groups_fit, fixed, codes.views_fit,
                              codes.part_widths)
        metrics = score(chosen.model, codes.X_test, codes.y_test)
    else:
        with FeatureStore(codes.store) as store:
            reader = BlockReader(store, codes.spec["tap"], codes.spec["pooling"], codes.row_shape,
                                 tuning.memory_budget_gb)
            chosen = select_in_blocks(name, reader, codes.positions_fit, codes.y_fit, tuning, codes.groups_fit,
                                      codes.views_fit, fixed)
            metrics = score_blocks(chosen.model, reader.blocks(codes.positions_test))
    chain = [step for step, _ in chosen.model.steps[:-1]]  # none for a map head
    row = {
        "classifier": name,
        "method": entry.description if entry is not ZOO[name] else "",
        "preprocessing": "+".join(chain) or "none" if not codes.part_widths else
        f"{'+'.join(tuning.preprocessing) or 'none'} per part",
        "params": chosen.params,
        "n_features": int(np.prod(codes.row_shape)),
        "n_train": len(codes.y_fit) - codes.n_val,
        "n_views": codes.n_views,
        "n_val": codes.n_val,
        "n_test": len(codes.y_test),
        "cv_folds": chosen.folds,
        "tuned_rows": chosen.tuned_rows,
        "candidates": chosen.candidates,
        "cv_accuracy": chosen.cv_accuracy,
        "cv_std": chosen.cv_std,
        **metrics,
        "search_seconds": round(chosen.search_seconds, 3),
        "fit_seconds": round(chosen.fit_seconds, 3),
        "epochs": tuning.chunk_epochs if not codes.in_memory else
        chosen.model[-1].n_iter_ if isinstance(chosen.model[-1], TorchClassifier) else None,
        "out_of_core": not codes.in_memory,
    }
    params = ", ".join(f"{key}={value}" for key, value in chosen.params.items())
    log.info("fit: %s %s/%s %s [%s]: cv %.1f %%, test %.1f %% (%d settings x %d folds, %.1f s)",
             codes.spec.get("backbone", "?"), codes.spec["tap"], codes.spec["pooling"], name, params,
             100 * chosen.cv_accuracy, 100 * metrics["test_accuracy"], chosen.candidates, chosen.folds,
             chosen.search_seconds)
    return row, chosen.model
