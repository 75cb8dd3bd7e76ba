"""What ``benchmark`` found: ``Results``, the ranked cells with their codes, table and plot.

A notebook holds one after ``classifiers.benchmark``, or gets one back from a run folder
(``Results.load``); ``Results.save`` writes what the ``fit`` and ``report`` stages write
(the models and ``results.json`` by ``classifiers.persistence``, the report by
``classifiers.report``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features import FeatureStore
from features.errors import SettingError

from .cells import Cell
from .fusion import parts_of
from .persistence import RESULTS_FILE, load_results, save_results
from .report import write_report
from .table import COLUMNS, format_table, plot_accuracy_by_depth

__all__ = ["Results", "open_stores"]


@dataclass
class Results:
    """What ``benchmark`` found: the cells best first (by cross-validation accuracy, as the
    report ranks them), the class names and where the codes came from."""

    cells: list[Cell]
    classes: list[str]
    stores: dict[str, FeatureStore]
    seed: int = 0
    """The searches' seed (``Tuning.seed``); the report's suspect-label folds use it too."""

    @property
    def best(self) -> Cell:
        return self.cells[0]

    def __repr__(self) -> str:
        """The ranked table, as ``report`` prints it (a notebook shows it for ``results``)."""
        return f"Results of {len(self.cells)} classifiers, best first:\n{format_table(self.rows)}"

    @property
    def rows(self) -> list[dict]:
        """One dict per cell, best first: the columns of ``results.csv`` (and the confusion matrix)."""
        return [cell.row for cell in self.cells]

    def to_pandas(self):
        """The rows as a pandas DataFrame (pandas is not a dependency: install it to use this)."""
        try:
            import pandas
        except ImportError as error:
            raise ImportError("results.to_pandas() needs pandas: pip install pandas; results.rows has the same "
                              "data as a list of dicts") from error
        return pandas.DataFrame(self.rows, columns=[column for column in COLUMNS if column != "model" or
                                                    any(row["model"] for row in self.rows)])

    def codes(self, cell: Cell, split: str | None = "test"):
        """``(X, y)`` of one split (None: every row) as ``cell``'s model takes them: its
        table's codes, or its parts' side by side (a fused cell, an ensemble)."""
        if cell.backbone not in self.stores:
            raise SettingError(f"these results hold no {cell.backbone} store: Results.load(run_dir, stores=[...])")
        read = [self.stores[cell.backbone].codes(*part, split) for part in parts_of(cell.spec)]
        return (read[0][0] if len(read) == 1 else np.hstack([X for X, _ in read])), read[0][1]

    def plot(self):
        """Test accuracy by tap depth, one panel per backbone: a matplotlib Figure."""
        return plot_accuracy_by_depth(self.rows)

    @classmethod
    def load(cls, run_dir, stores=()) -> Results:
        """The results that ``save`` (or the ``fit`` stage) wrote into ``run_dir``, each model
        loaded and checked against its sidecar (``load_results``); ``stores`` are the feature
        stores they were fitted on (for ``save``'s report)."""
        saved, models = load_results(run_dir)
        cells = [Cell(row, model, spec) for row, (model, spec) in zip(saved["rows"], models)]
        return cls(cells, saved["classes"], open_stores(stores), saved.get("seed", 0))

    def save(self, run_dir, report: bool = True) -> Path:
        """Write what the ``fit`` and ``report`` stages write into ``run_dir``: each model as
        ``models/<backbone>/<tap>-<pooling>-<classifier>.joblib`` with its sidecar,
        ``results.json`` (``save_results``) and, with ``report``, results.csv, the plots,
        report.md and report.html (``write_report``). Returns the path of ``results.json``."""
        results = save_results(run_dir, self.cells, self.classes, self.seed)
        if report:
            best_store = self.stores[self.best.backbone]
            write_report(run_dir, results, best_store.path, best_store.source)
        return Path(run_dir) / RESULTS_FILE


def open_stores(stores) -> dict[str, FeatureStore]:
    """``stores`` (a ``FeatureStore`` or path, or a list of them) opened and keyed by backbone;
    results rows are named by backbone, so one store each."""
    by_backbone = {}
    for store in stores if isinstance(stores, (list, tuple)) else [stores]:
        store = store if isinstance(store, FeatureStore) else FeatureStore(store)
        backbone = store.attrs["backbone"]
        if backbone in by_backbone:
            raise SettingError(f"{by_backbone[backbone].path} and {store.path} both hold {backbone} codes; benchmark "
                               f"them one at a time (results are named by backbone)")
        by_backbone[backbone] = store
    return by_backbone
