"""Training labels that look wrong: out-of-fold predictions ranked by confident learning.

Each training image is predicted by the best model's setting fitted on the other folds of
the training rows (``cross_val_predict``), so no image is judged by a model that saw its
label. cleanlab's ``find_label_issues`` (confident learning, Northcutt et al. 2021) then
keeps the images whose out-of-fold prediction confidently disagrees with their label,
with per-class thresholds that allow for classes the model is less sure of, ranked by
self-confidence: the out-of-fold probability of the given label, lowest first.

Augmented views train but are not judged (a view shares its image's label and group, and
the folds keep groups whole). More than ``MAX_IMAGES`` training images are capped to a
stratified sample of that many: the cost is ``SUSPECT_FOLDS`` fits of the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict

from .metrics import as_probabilities, probability_method
from .selection import cv_splits, grouped_fit_params, tuning_rows

__all__ = ["MAX_IMAGES", "SUSPECT_FOLDS", "Suspects", "find_suspects"]

MAX_IMAGES = 20_000
"""Training images judged at most (a stratified sample of them when there are more)."""
SUSPECT_FOLDS = 5
"""Folds of the out-of-fold predictions (fewer when the smallest class has fewer images)."""


@dataclass
class Suspects:
    """Suspect labels, most suspect first.

    ``rows`` are positions in the ``X`` given to ``find_suspects``; ``given`` and
    ``suggested`` are labels (the suggestion: the out-of-fold prediction); ``score`` is
    one minus the out-of-fold probability of the given label (higher: more suspect);
    ``confidence`` the probability of the suggested label. ``judged`` counts the images
    that were judged, ``folds`` the folds, ``how`` how the probabilities were made.
    """

    rows: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    score: np.ndarray
    confidence: np.ndarray
    judged: int
    folds: int
    how: str


def find_suspects(model, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None,
                  views: np.ndarray | None = None, random_state: int = 0, max_images: int = MAX_IMAGES) -> Suspects:
    """The training rows whose label the out-of-fold predictions of ``model``'s setting doubt.

    Parameters
    ----------
    model : Pipeline
        A fitted (or unfitted) zoo pipeline; it is cloned, so its chosen setting is what
        is cross-validated.
    X : ndarray, (n_samples, n_features)
    y : ndarray of int, (n_samples,)
    groups : ndarray, (n_samples,), optional
        The image each row shows (augmented views share their image's).
    views : ndarray of bool, (n_samples,), optional
        Rows that are augmented views: trained on in the folds, never judged.
    max_images : int
        Judge a stratified sample of this many images when there are more.
    """
    from cleanlab.filter import find_label_issues  # a second of imports, for the report only

    sample = tuning_rows(y, max_images, random_state, groups)
    X, y = X[sample], y[sample]
    groups = None if groups is None else np.asarray(groups)[sample]
    views = np.zeros(len(y), bool) if views is None else np.asarray(views, bool)[sample]
    folds, splits, _ = cv_splits(y, SUSPECT_FOLDS, random_state, groups)  # no views: every row predicted once
    method = probability_method(model)
    predictions = cross_val_predict(clone(model), X, y, cv=splits, method=method,
                                    params=grouped_fit_params(model, groups))  # a head's early-stopping fold keeps views whole
    probabilities, how = as_probabilities(predictions, method)
    present = np.unique(y)  # the probabilities' columns, in order
    judged = np.flatnonzero(~views)
    labels = np.searchsorted(present, y[judged])
    ranked = find_label_issues(labels, probabilities[judged], return_indices_ranked_by="self_confidence", n_jobs=1)
    chosen = probabilities[judged[ranked]]
    return Suspects(
        rows=sample[judged[ranked]],
        given=y[judged[ranked]],
        suggested=present[chosen.argmax(axis=1)],
        score=1 - chosen[np.arange(len(ranked)), labels[ranked]],
        confidence=chosen.max(axis=1),
        judged=len(judged),
        folds=folds,
        how=how,
    )
