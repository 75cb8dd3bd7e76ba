"""Everything the report writes into a run folder, in one call: ``write_report``.

Beside the table, the plots and ``report.md`` (``classifiers.table``) it reviews the best
model on the cached codes, without running the CNN: the test images it gets wrong, and
the training images whose label its out-of-fold predictions doubt
(``classifiers.suspects``), and it reviews the data through the best cell's codes:
near-duplicates, train/test leaks, outliers, class counts and a map
(``classifiers.datasection``). All are shown in ``report.html``; the suspects, pairs and
outliers are listed in full in ``suspect_labels.csv``, ``duplicates.csv`` and
``outliers.csv``. The ``report`` stage calls it, and so
can a notebook, with the run folder and the content of ``results.json``.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from features import MAP, FeatureStore, ImageSource
from features.files import write_atomic

from .datasection import DUPLICATE_COLUMNS, OUTLIER_COLUMNS, review_cell, review_section
from .fusion import ENSEMBLE, fused_spec, parts_of, read_blocks
from .html import Card, DataReviewSection, Gallery, render_page
from .learning_curve import CURVE_NAME, CURVE_PLOT, curve_summary, plot_learning_curve, run_curves, write_curve_csv
from .metrics import class_probabilities
from .persistence import load_model
from .table import (
    CONFUSION_NAME,
    PLOT_NAME,
    best_row,
    plot_accuracy_by_depth,
    plot_confusion_matrix,
    selection_order,
    weights_banner,
    write_csv,
    write_markdown,
)
from .suspects import MAX_IMAGES, SUSPECT_FOLDS, find_suspects
from .thumbnails import file_uri, thumbnail_uri

__all__ = ["MAX_MISTAKES", "MAX_SUSPECTS", "SUSPECT_COLUMNS", "write_report"]

log = logging.getLogger(__name__)

MAX_MISTAKES = 200
"""Mistakes shown as thumbnails, the most confident first (a thumbnail costs the page ~4 kB)."""
MAX_SUSPECTS = 100
"""Suspect labels shown as thumbnails; ``suspect_labels.csv`` lists them all."""
BLOCK_BYTES = 256 << 20
"""Codes read and scored at a time (as float32): a block of whole maps holds few rows."""
SUSPECT_COLUMNS = ("rank", "id", "given", "suggested", "score", "confidence")
"""Columns of ``suspect_labels.csv``; ``score`` is one minus the out-of-fold probability of the given label."""


def write_report(run_dir: str | Path, results: dict, store: str | Path | None = None,
                 source: ImageSource | None = None, progress: bool = True) -> None:
    """Write ``results.csv``, the plots, ``report.md``, ``report.html``, ``suspect_labels.csv``,
    ``duplicates.csv``, ``outliers.csv`` and ``learning_curve.csv`` (``classifiers.learning_curve``)
    into ``run_dir``.

    Parameters
    ----------
    run_dir : str or Path
        The run folder; the rows' ``model`` paths are relative to it.
    results : dict
        The content of ``results.json``: ``rows`` (best first), ``classes``, ``best_model``,
        ``seed`` (of the suspect labels' folds; 0 when absent).
    store : str or Path, optional
        The feature store of the best row's backbone. Without it the page has no mistakes,
        no suspect labels, no data review and no learning curves.
    source : ImageSource, optional
        The images the store was made from, for thumbnails. Without it (or for an image
        that cannot be read) the page names the images without showing them.
    progress : bool
        A progress bar while thumbnails are made.
    """
    run_dir = Path(run_dir)
    rows, classes = results["rows"], results["classes"]
    banner = weights_banner(rows)
    best = best_row(rows)
    plots = {"test accuracy by depth": PLOT_NAME, "confusion matrix of the best model": CONFUSION_NAME,
             "learning curves of the best cells": CURVE_PLOT}
    write_atomic(run_dir / "results.csv", lambda partial: write_csv(rows, partial))
    write_atomic(run_dir / PLOT_NAME, lambda partial: plot_accuracy_by_depth(rows, partial, banner))
    write_atomic(run_dir / CONFUSION_NAME, lambda partial: plot_confusion_matrix(best, classes, partial, banner))
    seed = results.get("seed", 0)
    points = [] if store is None else run_curves(run_dir, rows, store, seed)
    write_atomic(run_dir / CURVE_NAME, lambda partial: write_curve_csv(points, partial))
    write_atomic(run_dir / CURVE_PLOT, lambda partial: plot_learning_curve(points, partial, banner))
    notes = {"Would more labels help?": curve_summary(points, rows) or
             "Not computed: no feature store was given to the report, or no cell could be refitted on fewer images."}
    write_atomic(run_dir / "report.md", lambda partial: write_markdown(rows, partial, plots, banner, notes))
    if store is None:
        note = "Not shown: no feature store was given to the report, so the best model could not be run on the codes."
        galleries, suspects, duplicates, outliers = [Gallery("Mistakes", note), Gallery("Suspect labels", note)], [], [], []
        review = DataReviewSection("Not reviewed: no feature store was given to the report, so there are no codes "
                                   "to compare the images by.")
    else:
        with FeatureStore(store) as codes:
            model, _ = load_model(run_dir / best["model"], fused_spec(codes.attrs, parts_of(best)))
            pictures = _Thumbnails(source, progress)
            test = np.flatnonzero(codes.splits == "test")
            predicted, confidence, how = _predict(model, codes, best, test)
            mistakes = _mistakes(codes, test, predicted, confidence, how, classes, pictures)
            suspects_gallery, suspects = _suspects(model, codes, best, classes, pictures, seed)
            galleries = [mistakes, suspects_gallery]
            plain = min((row for row in rows if row["backbone"] == best["backbone"] and len(parts_of(row)) == 1
                         and row["classifier"] != ENSEMBLE), key=selection_order)  # the store is the best's backbone's
            log.info("report: reviewing the data by the codes of %s/%s (the best single table): near-duplicates, "
                     "leaks, outliers, a map", plain["tap"], plain["pooling"])
            cell = review_cell(codes, plain["tap"], plain["pooling"], seed, plain["backbone"])
            duplicates, outliers = cell.duplicates(), cell.outliers()
            right = {codes.ids[row]: bool(guess == codes.labels[row]) for row, guess in zip(test, predicted)}
            review = review_section(
                cell, pictures, pictures.images, lambda positions: _predict(model, codes, best, positions)[0],
                {sample_id for sample_id, ok in right.items() if not ok}, {row["id"] for row in suspects}, right, seed)
    write_atomic(run_dir / "suspect_labels.csv", lambda partial: _write_rows(suspects, SUSPECT_COLUMNS, partial))
    write_atomic(run_dir / "duplicates.csv", lambda partial: _write_rows(duplicates, DUPLICATE_COLUMNS, partial))
    write_atomic(run_dir / "outliers.csv", lambda partial: _write_rows(outliers, OUTLIER_COLUMNS, partial))
    uris = {caption: file_uri(run_dir / name) for caption, name in plots.items()}
    page = render_page(rows, classes, uris, banner, galleries, review, notes)
    write_atomic(run_dir / "report.html", lambda partial: partial.write_text(page, encoding="utf-8"))


class _Thumbnails:
    """Thumbnails of a source's images by id: None without a source, or for an image that
    is no longer in it or cannot be read (the page then names it without showing it)."""

    def __init__(self, source: ImageSource | None, progress: bool):
        self.source = source
        self.index = {} if source is None else {sample_id: index for index, sample_id in enumerate(source.ids)}
        self.progress = progress

    def images(self, ids: list[str], what: str = "map") -> Iterator[Image.Image | None]:
        """The images of ``ids``, one at a time (None for those that cannot be read, with one warning)."""
        if self.source is None:
            yield from [None] * len(ids)
            return
        unreadable = []
        for sample_id in tqdm(ids, desc=f"report: {what}", unit="image", disable=None if self.progress else True):
            try:
                yield self.source.load(self.index[sample_id])
            except (KeyError, OSError) as error:
                unreadable.append(f"{sample_id} ({error})")
                yield None
        if unreadable:
            log.warning("report: %d of %d images could not be shown: %s", len(unreadable), len(ids),
                        ", ".join(unreadable[:3]))

    def __call__(self, ids: list[str], what: str) -> list[str | None]:
        return [None if image is None else thumbnail_uri(image) for image in self.images(ids, what)]


def _blocks(store: FeatureStore, best: dict, positions: np.ndarray):
    """The best row's codes of the rows at ``positions`` (its parts side by side when fused),
    ``BLOCK_BYTES`` at a time."""
    parts = parts_of(best)
    row_bytes = 4 * sum(int(np.prod(store.row_shape(*part))) for part in parts)
    return read_blocks(store, parts, positions, max(1, BLOCK_BYTES // row_bytes))


def _predict(model, store: FeatureStore, best: dict, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """The best model's predicted labels of the rows at ``positions`` (sorted), the
    probability of each prediction, and how the probabilities were made."""
    predicted, confidence, how = [np.zeros(0, np.int64)], [np.zeros(0)], "predict_proba"
    for X, _ in _blocks(store, best, positions):
        guess = model.predict(X)
        probabilities, how = class_probabilities(model, X)
        predicted.append(guess)
        confidence.append(probabilities[np.arange(len(guess)), np.searchsorted(model.classes_, guess)])
    return np.concatenate(predicted), np.concatenate(confidence), how


def _mistakes(store: FeatureStore, test: np.ndarray, predicted: np.ndarray, confidence: np.ndarray, how: str,
              classes: list[str], pictures: _Thumbnails) -> Gallery:
    """The best model's wrong predictions of the ``test`` rows, the most confident first,
    under the confused pairs (true -> predicted) they belong to, the most frequent pair first."""
    truth = store.labels[test]
    wrong = np.flatnonzero(predicted != truth)
    pairs = Counter(zip(truth[wrong], predicted[wrong]))
    shown = wrong[np.argsort(-confidence[wrong], kind="stable")][:MAX_MISTAKES]
    ids = [store.ids[position] for position in test[shown]]
    cards = {index: Card(sample_id, uri, [f"true: {classes[truth[index]]}", f"predicted: {classes[predicted[index]]}",
                                          f"confidence {confidence[index]:.2f}"])
             for index, sample_id, uri in zip(shown, ids, pictures(ids, "mistakes"))}
    groups = []
    for (true, guess), count in pairs.most_common():
        mine = [cards[index] for index in shown if (truth[index], predicted[index]) == (true, guess)]
        if mine:
            groups.append((f"{classes[true]} taken for {classes[guess]}: {count} test images"
                           + (f" ({len(mine)} shown)" if len(mine) < count else ""), mine))
    capped = f"; the {MAX_MISTAKES} most confident are shown" if len(wrong) > MAX_MISTAKES else ""
    note = (f"{len(wrong)} of {len(test)} test images are misclassified{capped}, grouped by confused pair (the most "
            f"frequent first), the most confident mistakes first. Confidence: the probability of the predicted "
            f"class, from {how}" + (" (it ranks the classes but is not calibrated)." if how != "predict_proba" else "."))
    return Gallery("Mistakes", note, groups)


def _suspects(model, store: FeatureStore, best: dict, classes: list[str], pictures: _Thumbnails,
              seed: int) -> tuple[Gallery, list[dict]]:
    """Training labels that the out-of-fold predictions of the best model's setting doubt
    (``find_suspects``), as a gallery and as rows of ``suspect_labels.csv``."""
    title = "Suspect labels"
    if best["pooling"] == MAP:
        return Gallery(title, f"Not computed: the best model ({best['classifier']}) trains on whole maps, and judging "
                              f"the training labels would fine-tune it {SUSPECT_FOLDS} more times."), []
    if best["classifier"] == ENSEMBLE:
        return Gallery(title, "Not computed: the best model is an ensemble, and judging the training labels would "
                              "cross-validate each of its members inside each fold; the rows of its members show "
                              "which cells it stacks."), []
    if best.get("out_of_core"):
        return Gallery(title, "Not computed: the best model learned from its codes in row blocks (they are over "
                              "classifiers.memory_budget_gb), and out-of-fold predictions would hold them all in "
                              "memory."), []
    fit = np.flatnonzero(np.isin(store.splits, ("train", "val")))
    X = np.concatenate([X for X, _ in _blocks(store, best, fit)])
    ids, groups = np.asarray(store.ids, dtype=object)[fit], store.groups[fit]
    images = len(set(groups))
    log.info("report: judging the labels of %d training images by %d-fold out-of-fold predictions of %s",
             min(images, MAX_IMAGES), SUSPECT_FOLDS, best["classifier"])
    found = find_suspects(model, X, store.labels[fit], groups, ids != groups, random_state=seed)
    rows = [{"rank": rank, "id": ids[row], "given": classes[given], "suggested": classes[suggested],
             "score": round(float(score), 4), "confidence": round(float(confidence), 4)}
            for rank, (row, given, suggested, score, confidence) in enumerate(
                zip(found.rows, found.given, found.suggested, found.score, found.confidence), start=1)]
    shown = rows[:MAX_SUSPECTS]
    uris = pictures([row["id"] for row in shown], "suspect labels")
    cards = [Card(row["id"], uri, [f"given: {row['given']}", f"suggested: {row['suggested']}",
                                   f"score {row['score']:.2f}"]) for row, uri in zip(shown, uris)]
    sample = f" (a stratified sample of {found.judged} of {images})" if found.judged < images else ""
    note = (f"{len(rows)} of {found.judged} training images{sample} have a label that the out-of-fold predictions "
            f"confidently contradict ({found.folds}-fold cross-validation of {best['classifier']} with its chosen "
            f"setting; probabilities from {found.how}); found by confident learning (cleanlab's find_label_issues) "
            f"and ranked by score, one minus the out-of-fold probability of the given label"
            + (f"; the first {MAX_SUSPECTS} are shown" if len(rows) > MAX_SUSPECTS else "")
            + ". suspect_labels.csv lists them all. A suspect is worth a look, not a verdict: it may be mislabelled, "
              "ambiguous, or just hard.")
    return Gallery(title, note, [("", cards)] if cards else []), rows


def _write_rows(rows: list[dict], columns: tuple[str, ...], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
