"""How every classifier is tuned, fitted and scored: one value for the search, the benchmark and ``fit``.

``Tuning`` checks its settings itself (``features.constraints``), and ``check_models`` the
classifiers' names, so that ``[classifiers]`` and ``classifiers.benchmark`` refuse a bad
value with the same message.

Importing this module costs no scikit-learn or torch: configurations take their defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from features.constraints import Interval, Options, Rule, check_fields, choice_error
from features.errors import SettingError

from .fusion import DEFAULT_FUSE, check_fuse
from .preprocessing import DEFAULT_PREPROCESSING, check_preprocessing
from .zoo import ZOO

__all__ = ["Tuning", "check_models"]


def check_models(models) -> None:
    """Raise ``SettingError`` unless ``models`` names one or more zoo entries (``classifiers.ZOO``)."""
    if not models:
        raise SettingError(f"models is empty; name at least one of {', '.join(ZOO)}")
    for name in models:
        if name not in ZOO:
            raise choice_error("models", name, ZOO)


def _by(check, shown: bool = True):
    """A constraint from one of the checks that raise ``ValueError`` with what is wrong
    (``check_preprocessing``); ``shown``: the message repeats the value (``check_fuse``'s name the wrong item)."""

    def constraint(name: str, value) -> None:
        try:
            check(value)
        except ValueError as error:
            raise SettingError(f"{name}{f' = {value!r}' if shown else ''}: {error}") from None

    return constraint


def _grid(name: str, grid: dict) -> None:
    """Grids by zoo name, each a table of parameter = [values] (the parameters' names: ``check_grid``)."""
    for model, table in grid.items():
        if model not in ZOO:
            raise choice_error(name, model, ZOO)
        if not isinstance(table, dict):
            raise SettingError(f"{name}.{model} = {table!r} must be a table of parameter = [values], "
                               f"e.g. [classifiers.grid.{model}] followed by C = [0.1, 1.0]")


@dataclass(frozen=True)
class Tuning:
    """The settings of ``[classifiers]`` besides which models: the same names, defaults and meanings.

    Parameters
    ----------
    preprocessing : list of str
        Steps before each classifier (``PREPROCESSING``), e.g. ``["ssqrt", "standard"]``.
    grid : dict
        Overrides of default grids by model, ``{"logreg": {"C": [0.1, 1.0]}}``.
    cv_folds : int
        Folds of the stratified (group-aware) cross-validation; fewer when a class has fewer images.
    tune_rows : int or None
        Searches on more images than this run on a stratified sample of them, and the
        chosen setting is refitted on every row; None or 0: on every row.
    holdout_rows : int
        From this many training images up, every classifier is scored on one shared
        held-out split (a tenth of the images, the fold the torch heads' early stopping
        watches) instead of k folds; below it, every classifier (the heads too) by the
        same ``cv_folds`` folds, where one held-out fold would be too few images to tell
        settings apart. 0: always k folds.
    head_folds : int
        1: the torch heads (and ``finetune``) are scored like the others (``holdout_rows``);
        2 or more: always by that many folds.
    memory_budget_gb : float
        Training codes larger than this (as float32) stay in the store and are learnt
        from in row blocks, ``chunk_epochs`` passes.
    chunk_epochs : int
    seed : int
        Of the folds, the samples and the models.
    n_jobs : int or None
        Parallel fits of a search (``-1``: every core). How the work runs, not what it
        gives: the same selection for any value.
    fuse : list
        Fused cells (``classifiers.fusion``): lists of ``"tap/pooling"`` names whose codes
        are put side by side, and ``"all"`` (every pooled table of each backbone that has
        two or more); ``[]``: none.
    fuse_width : int or None
        A fused cell's parts are reduced by PCA to their shares of this many columns;
        None or 0: kept whole.
    fuse_models : int
        A fused cell is fitted with the classifiers of this many best single-table cells of
        its backbone (fewer when they share a classifier), chosen by cross-validation after
        the single tables: fusing helps the strongest classifier, and the others' fused fits
        were a third of the fit stage at 60,000 images without changing the pick. 0: every
        classifier.
    ensemble : int
        A stacked ensemble (``classifiers.ensemble``) of up to this many of the best cells
        by cross-validation, one more row; 0 or 1: none. Not built where the classifiers
        are scored on one held-out split (``holdout_rows``): see ``stack_cells``.
    """

    preprocessing: list[str] = field(default_factory=lambda: list(DEFAULT_PREPROCESSING))
    grid: dict = field(default_factory=dict)
    cv_folds: int = 5
    tune_rows: int | None = 10_000
    holdout_rows: int = 10_000
    head_folds: int = 1
    memory_budget_gb: float = 4.0
    chunk_epochs: int = 10
    seed: int = 0
    n_jobs: int | None = -1
    fuse: list = field(default_factory=lambda: list(DEFAULT_FUSE))
    fuse_width: int | None = None
    fuse_models: int = 2
    ensemble: int = 3

    constraints: ClassVar[dict] = {
        "preprocessing": Rule(list, tuple, _by(check_preprocessing)),
        "grid": Rule(dict, _grid),
        "cv_folds": Interval(int, 2),
        "tune_rows": Rule(None, Interval(int, 0), hint="0: search on every row"),
        "holdout_rows": Rule(Interval(int, 0), hint="0: always k-fold cross-validation"),
        "head_folds": Rule(Interval(int, 1), hint="1: scored like the other classifiers; 2 or more: always k-fold "
                                                  "cross-validation"),
        "memory_budget_gb": Rule(Interval(float, 0, open_low=True), hint="gigabytes"),
        "chunk_epochs": Interval(int, 1),
        "seed": Interval(int, 0),
        "n_jobs": Rule(None, Options((-1,), "-1 (all cores)"), Interval(int, 1)),
        "fuse": _by(check_fuse, shown=False),
        "fuse_width": Rule(None, Interval(int, 0), hint="0: parts kept whole"),
        "fuse_models": Rule(Interval(int, 0), hint="0: every classifier"),
        "ensemble": Rule(Interval(int, 0), hint="0 or 1: no ensemble"),
    }
    """What each setting accepts (``features.constraints``): the one check, for a config and for Python."""

    def __post_init__(self):
        check_fields(self)

    def grid_of(self, name: str) -> dict | None:
        """The grid overrides of model ``name``, if any."""
        return self.grid.get(name)
