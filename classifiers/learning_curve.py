"""Learning curves: would more labels help, and which of cs231n's four cases the data is.

For the best few cells (``CURVE_CELLS`` of the best row's backbone, by cross-validation
accuracy), each cell's chosen setting is refitted on a few training images per class
(1, 2, 5, 10, 20, 50, ... and half of them), on the cached codes, several seeded draws
each (as the few-shot protocols of CLIP_benchmark and DINOv2 do), and scored on the test
split; the point at every image is the cell's own row. A draw takes whole images (with
their augmented views) per class. The rows go to ``learning_curve.csv``, the means and
spreads to a plot.

Two readings follow (``curve_summary``):

- **More labels?** The slope over the last doubling: the best cell's test accuracy at
  every image minus its mean at half of them. ``HELPS_POINTS`` (1 point) or more: the curve
  still rises and more labels would still help; less: it has flattened.
- **cs231n's four cases** (small or large data x similar to ImageNet or not). *Small*: the
  curve still rises over the last doubling (the data are small for what the task asks,
  whatever their count); *large*: it has flattened. *Similar*: the best cell takes the
  deepest tap benchmarked (late, ImageNet-specific codes serve best); *different*: an
  earlier tap wins over the deepest (features further from ImageNet's classes do better).
  The advice is cs231n's: small and similar, a linear classifier on the late codes; small
  and different, a classifier on earlier layers' codes; large and similar, fine-tune the
  last layers; large and different, fine-tune through more of the network.
"""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path

import numpy as np

from features import MAP

from .fusion import ENSEMBLE, parts_of
from .table import new_figure, selection_order

__all__ = ["CURVE_NAME", "CURVE_PLOT", "CURVE_COLUMNS", "CURVE_CELLS", "DRAWS", "SHOTS", "HELPS_POINTS",
           "curve_rows", "learning_curve", "run_curves", "write_curve_csv", "plot_learning_curve", "curve_summary"]

log = logging.getLogger(__name__)

CURVE_NAME = "learning_curve.csv"
CURVE_PLOT = "learning_curve.png"
CURVE_COLUMNS = ("backbone", "tap", "pooling", "classifier", "per_class", "n_train", "draw", "test_accuracy")
CURVE_CELLS = 3
"""Cells whose curves are drawn: the best of the best row's backbone (one at scale: ``curve_rows``)."""
DRAWS = 5
"""Seeded draws of a point; fewer for large ones (see ``_draws``)."""
SHOTS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000)
"""Training images per class of the points up to a quarter of them (half and all are added)."""
HELPS_POINTS = 1.0
"""Points of test accuracy over the last doubling from which more labels would still help."""


def curve_rows(rows: list[dict]) -> list[dict]:
    """The rows whose curves the report draws: the best ``CURVE_CELLS`` of the best row's
    backbone that were fitted in memory on pooled codes (no ensembles, no map heads); only
    the best of them where it was scored on one held-out split (``Tuning.holdout_rows``, at
    scale), as a curve costs about 1.7 times its cell's fit and the question it answers
    (would more labels help?) is the best cell's."""
    ranked = sorted(rows, key=selection_order)  # the order alone: no test comparisons, so status loads no scikit-learn
    backbone = ranked[0]["backbone"]
    cells = [row for row in ranked if row["backbone"] == backbone and row["classifier"] != ENSEMBLE
             and not row.get("out_of_core") and MAP not in row["pooling"].split("+")]
    return cells[:1 if cells and cells[0].get("cv_folds") == 1 else CURVE_CELLS]


def _draws(rows: int, all_rows: int) -> int:
    """Draws of a point of ``rows`` training rows: ``DRAWS``, fewer when they would fit more
    than a quarter of all the rows between them (large draws overlap, and cost the most)."""
    return int(np.clip(all_rows // (4 * rows), 1, DRAWS))


def _per_class(y: np.ndarray, images: np.ndarray) -> int:
    return int(np.bincount(y[images]).min())


def _draw(y: np.ndarray, images: np.ndarray, groups: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Rows of ``per_class`` images of each class (all of a class's rows: its views too)."""
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.permutation(images[y[images] == label])[:per_class] for label in np.unique(y)])
    return np.flatnonzero(np.isin(groups, groups[chosen]))


def learning_curve(model, X_fit: np.ndarray, y_fit: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                   groups: np.ndarray | None = None, seed: int = 0) -> list[dict]:
    """Test accuracy of ``model``'s setting against training images per class.

    Parameters
    ----------
    model : estimator
        Fitted or not; it is cloned, so its chosen setting is what is refitted.
    X_fit : ndarray, (n_samples, n_features)
    y_fit : ndarray of int, (n_samples,)
    X_test, y_test : the test rows
    groups : ndarray, (n_samples,), optional
        The image each row shows (augmented views share their image's).
    seed : int
        Of the draws (draw ``d`` of a point uses ``seed + d``).

    Returns
    -------
    list of dict
        ``per_class``, ``n_train`` (rows fitted), ``draw``, ``test_accuracy``: one per
        fit, for 1, 2, 5, ... images per class up to a quarter of the smallest class's, and
        half. A curve refits about 1.2 times its cell's rows in all (``_draws``; twice
        that before), in many small fits: about 1.7 times its cell's fit time for an
        ``mlp-head`` at 60,000 images. A fit that a setting cannot take on so few rows (k neighbours > rows) is left out.
    """
    from sklearn.base import clone  # here: the report's inputs are listed without scikit-learn

    groups = np.arange(len(y_fit)).astype(str) if groups is None else np.asarray(groups)
    _, first = np.unique(groups, return_index=True)
    images = np.sort(first)
    most = _per_class(y_fit, images)
    points = [shots for shots in SHOTS if shots <= most // 4] + ([most // 2] if most >= 2 else [])
    found = []
    for per_class in points:
        rows = per_class * len(np.unique(y_fit))
        for draw in range(_draws(rows, len(images))):
            train = _draw(y_fit, images, groups, per_class, seed + draw)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # convergence on a handful of rows is not news
                    predicted = clone(model).fit(X_fit[train], y_fit[train]).predict(X_test)
            except ValueError as error:  # k neighbours > rows: known at prediction
                log.info("report: learning curve at %d per class skipped: %s", per_class, error)
                break
            found.append({"per_class": per_class, "n_train": len(train), "draw": draw,
                          "test_accuracy": float(np.mean(predicted == y_test))})
    return found


def write_curve_csv(points: list[dict], path: Path) -> None:
    """``learning_curve.csv``: one row per fit (``CURVE_COLUMNS``), and per cell one at every
    image (``per_class``: the smallest class's images), the cell's own row."""
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(points)


def _label(point: dict) -> str:
    return f"{point['tap']}/{point['pooling']} {point['classifier']}"


def _means(points: list[dict]) -> dict[str, list[tuple[int, float, float]]]:
    """Per cell (label), ``(per_class, mean accuracy, standard deviation)`` by per_class."""
    curves = {}
    for label in dict.fromkeys(map(_label, points)):
        mine = [point for point in points if _label(point) == label]
        curves[label] = [(shots, float(np.mean(values)), float(np.std(values)))
                         for shots in sorted({point["per_class"] for point in mine})
                         for values in [[point["test_accuracy"] for point in mine if point["per_class"] == shots]]]
    return curves


def plot_learning_curve(points: list[dict], path: Path, banner: str = "") -> None:
    """Test accuracy (mean and spread over the draws) against training images per class,
    log scale, one line per cell; a note instead when there are no points."""
    figure = new_figure(figsize=(6, 3.8))
    axis = figure.subplots()
    for label, curve in _means(points).items():
        shots, mean, spread = (np.array(values) for values in zip(*curve))
        axis.errorbar(shots, 100 * mean, yerr=100 * spread, marker="o", capsize=3, label=label)
    if points:
        from matplotlib.ticker import ScalarFormatter

        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(ScalarFormatter())  # 1, 10, 100, not 10^0
        axis.legend(fontsize=8, loc="lower right")
    else:
        axis.text(0.5, 0.5, "no learning curve: no feature store was given to the report", ha="center",
                  va="center", transform=axis.transAxes)
    axis.set_xlabel("training images per class")
    axis.set_ylabel("test accuracy (%)")
    axis.grid(alpha=0.3)
    if banner:
        figure.suptitle(banner, color="firebrick", fontsize=8, wrap=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120, format="png")


def curve_summary(points: list[dict], rows: list[dict]) -> str:
    """Whether more labels would help and which of cs231n's four cases the data look like,
    in words (see the module's docstring); empty without points."""
    best = curve_rows(rows)[0] if points else None
    curve = _means([point for point in points if _label(point) == _label(best)]).get(_label(best)) if best else None
    if not curve:
        return ""
    if len(curve) < 2:
        return ""
    (half, mean, spread), _ = curve[-2:]
    slope = 100 * (best["test_accuracy"] - mean)
    helps = slope >= HELPS_POINTS
    tables = [row for row in rows if row["backbone"] == best["backbone"] and "+" not in row["tap"]]
    deepest = max(tables or [best], key=lambda row: row["depth"])
    similar = best["depth"] >= deepest["depth"]
    case = f"{'small' if helps else 'large'} and {'similar to' if similar else 'different from'} ImageNet"
    advice = {
        (True, True): "a linear classifier on the late codes",
        (True, False): "a classifier on earlier layers' codes",
        (False, True): "fine-tuning the last layers",
        (False, False): "fine-tuning through more of the network",
    }[helps, similar]
    return (
        f"Learning curve of the best cell ({_label(best)}): {100 * mean:.1f} % (+-{100 * spread:.1f} over the "
        f"draws) with {half} training images per class, {100 * best['test_accuracy']:.1f} % with all of them "
        f"({best['n_train'] + best['n_val']} images): {slope:+.1f} points over the last doubling, so more labels "
        f"would {'still help' if helps else 'help little'} (the bar: {HELPS_POINTS:g} point). In cs231n's terms "
        f"the data look {case}: the curve {'still rises' if helps else 'has flattened'}, and "
        f"{'the deepest tap benchmarked' if similar else 'a tap before the deepest (' + deepest['tap'] + ')'} serves "
        f"best; its rule of thumb for that case: {advice}."
    )


def run_curves(run_dir: Path, rows: list[dict], store, seed: int = 0) -> list[dict]:
    """The learning curves of ``curve_rows`` (``learning_curve``), each point named by its
    cell (``backbone``, ``tap``, ``pooling``, ``classifier``); ``store`` is the path of the
    best row's backbone's feature store."""
    from .cells import load_fused_codes  # here: the report's inputs are listed without scikit-learn
    from .persistence import load_model

    points = []
    for row in curve_rows(rows):
        codes = load_fused_codes(store, parts_of(row))
        model, _ = load_model(Path(run_dir) / row["model"], codes.spec)
        log.info("report: learning curve of %s", _label(row))
        cell = {key: row[key] for key in CURVE_COLUMNS[:4]}
        points += [{**cell, **point} for point in learning_curve(model, codes.X_fit, codes.y_fit, codes.X_test,
                                                                 codes.y_test, codes.groups_fit, seed)]
        images = np.unique(codes.groups_fit, return_index=True)[1]
        points.append({**cell, "per_class": _per_class(codes.y_fit, images), "n_train": len(codes.y_fit),
                       "draw": 0, "test_accuracy": row["test_accuracy"]})  # every image: the cell's own model
    return points
