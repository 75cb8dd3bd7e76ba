"""How every classifier is tuned, fitted and scored: one value for the search, the benchmark and ``fit``.

Importing this module costs no scikit-learn or torch: configurations take their defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .fusion import DEFAULT_FUSE
from .preprocessing import DEFAULT_PREPROCESSING

__all__ = ["Tuning"]


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
    ensemble : int
        A stacked ensemble (``classifiers.ensemble``) of up to this many of the best cells
        by cross-validation, one more row; 0 or 1: none.
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
    ensemble: int = 3

    def grid_of(self, name: str) -> dict | None:
        """The grid overrides of model ``name``, if any."""
        return self.grid.get(name)
