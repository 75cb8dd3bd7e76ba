"""Results of a benchmark as a ranked table: printed, ``results.csv``, plots and ``report.md``.

``classifiers.report.write_report`` writes them into a run folder, beside the review of the
best model; this module only ranks and draws rows.

A row is one tuned classifier on one (backbone, tap, pooling): the dict that
``benchmark_model`` returns plus ``backbone``, ``weights``, ``pretrained`` and ``depth``
(tap order, for the plot's x axis). The best model, overall and per backbone, is the one
with the highest cross-validation accuracy on the training split: choosing by test
accuracy would spend the test split on selection and make the winner's test number
optimistic. Test accuracy is the number each row reports, with its 95 % interval.

Equal selection scores are broken by a rule that does not depend on timing, so that the
same inputs give the same ``best`` on every run: the simpler classifier
(``classifiers.zoo.SIMPLEST_FIRST``), then the shallower tap, then the order in which the
rows were made (the config's: backbones, then the store's taps and poolings, then
``classifiers.models``).

Whether the best row is better than the others is then asked of the test images, row by
row on the same images (McNemar's exact test, ``classifiers.metrics.mcnemar_pvalue``):
rows whose p-value is at least 0.05 are ``tied_with_best``, which the table, the heatmap
and the best-model sentence say (``tie_summary``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .zoo import simplicity

CONFIDENCE = 0.95
"""Of the test accuracy's interval, and one minus the McNemar p-value under which a row
differs from the best (``classifiers.metrics`` has the same; it is not imported here, as
it loads scikit-learn, and the command line's answers that need no model must not)."""

__all__ = [
    "COLUMNS", "SHOWN", "PLOT_NAME", "CONFUSION_NAME", "REPORT_FILES", "selection_order", "rank_rows", "best_row",
    "tie_summary", "weights_banner", "format_cell", "format_table", "new_figure", "finetune_summary", "write_csv",
    "plot_accuracy_by_depth", "plot_confusion_matrix", "write_markdown",
]

PLOT_NAME = "accuracy_by_depth.png"
CONFUSION_NAME = "confusion_matrix.png"
REPORT_FILES = ("results.csv", PLOT_NAME, CONFUSION_NAME, "report.md", "report.html", "suspect_labels.csv",
                "duplicates.csv", "outliers.csv", "learning_curve.csv", "learning_curve.png")
"""What ``write_report`` writes into a run folder."""

COLUMNS = (
    "backbone", "weights", "tap", "depth", "pooling", "classifier", "method", "preprocessing", "params",
    "n_features", "n_train", "n_views", "n_val", "n_test", "cv_folds", "tuned_rows", "candidates", "cv_accuracy",
    "cv_std", "test_accuracy", "test_acc_low", "test_acc_high", "tied_with_best", "p_vs_best", "balanced_accuracy", "macro_f1", "top5_accuracy", "log_loss",
    "search_seconds", "fit_seconds", "epochs", "frozen_ms_per_image", "recompute_seconds",
    "predict_seconds_per_1000", "model_bytes", "model", "best",
)
"""Columns of ``results.csv`` (the confusion matrices and ``test_correct`` stay in ``results.json``)."""

SHOWN = (
    ("backbone", "backbone"), ("tap", "tap"), ("pooling", "pooling"), ("classifier", "classifier"),
    ("params", "setting"), ("n_features", "features"), ("cv_accuracy", "cv acc"),
    ("test_accuracy", "test acc"), ("macro_f1", "macro F1"), ("top5_accuracy", "top-5"),
    ("fit_seconds", "fit s"), ("predict_seconds_per_1000", "ms/img"), ("tied_with_best", "tied"), ("best", "best"),
)
"""The columns of the printed, Markdown and HTML tables: (row key, title)."""
_PERCENT = {"cv_accuracy", "test_accuracy", "macro_f1", "top5_accuracy"}


def selection_order(row: dict) -> tuple:
    """The ranking key: the higher cv accuracy, then the simpler classifier, then the shallower
    tap (the sort is stable: then the rows' own order). cv accuracies equal up to float
    rounding are equal."""
    return -round(row["cv_accuracy"], 9), simplicity(row["classifier"]), row.get("depth") or 0


def rank_rows(rows: list[dict]) -> list[dict]:
    """Rows best first (``selection_order``), marked ``best`` = overall / backbone / '', and
    compared with the best row on the test images: ``p_vs_best`` (McNemar's exact test)
    and ``tied_with_best`` (p at least 1 - ``CONFIDENCE``; the best row itself is tied),
    None for rows that do not say which test images they got right."""
    ordered = sorted(rows, key=selection_order)
    reference = ordered[0] if ordered and ordered[0].get("test_correct") else None
    seen_backbones = set()
    marked = []
    for rank, row in enumerate(ordered):
        best = "overall" if rank == 0 else "backbone" if row["backbone"] not in seen_backbones else ""
        seen_backbones.add(row["backbone"])
        p_value = _p_vs(reference, row)
        marked.append({**row, "best": best, "p_vs_best": p_value,
                       "tied_with_best": None if p_value is None else p_value >= 1 - CONFIDENCE})
    return marked


def _p_vs(reference: dict | None, row: dict) -> float | None:
    """McNemar's p-value of ``row`` against ``reference`` on their test images; None when
    either lacks its outcomes or they were scored on different test images."""
    if reference is None or not row.get("test_correct") or row["n_test"] != reference["n_test"]:
        return None
    from .metrics import mcnemar_pvalue, unpack_outcomes

    return round(mcnemar_pvalue(unpack_outcomes(reference["test_correct"], reference["n_test"]),
                                unpack_outcomes(row["test_correct"], row["n_test"])), 6)


def tie_summary(rows: list[dict]) -> str:
    """In one sentence, whether the best row's lead is within the test split's noise: how
    many other rows are tied with it and the simplest of the tied rows (the simpler
    classifier, then fewer features, then the shallower tap); empty when the rows carry
    no test outcomes."""
    ranked = rank_rows(rows)
    best = ranked[0]
    if best["tied_with_best"] is None:
        return ""
    tied = [row for row in ranked if row["tied_with_best"]]
    test = f"on the {best['n_test']:,} test images (McNemar's exact test, p >= {1 - CONFIDENCE:.2f})"
    if len(tied) == 1:
        return f"Every other row differs from it {test}."
    simplest = min(tied, key=lambda row: (simplicity(row["classifier"]), row["n_features"], row.get("depth") or 0))
    which = ("it is the simplest of them" if simplest is best else
             f"the simplest of them is {_name(simplest)}, test accuracy {format_cell(simplest, 'test_accuracy')}")
    return f"Within noise: tied with {len(tied) - 1} other{'s' if len(tied) > 2 else ''} {test}; {which}."


def _name(row: dict) -> str:
    return f"{row['backbone']} {row['tap']}/{row['pooling']} {row['classifier']} ({format_cell(row, 'params')})"


def best_row(rows: list[dict]) -> dict:
    """The overall best row of ``rank_rows`` (without the comparison with the others, which
    loads scikit-learn: ``status`` asks for the best model's file)."""
    return {**min(rows, key=selection_order), "best": "overall"}  # min: the first of equals, as the stable sort


def weights_banner(rows: list[dict]) -> str:
    """A warning when any result came from random weights, empty otherwise."""
    random = sorted({row["backbone"] for row in rows if not row["pretrained"]})
    if not random:
        return ""
    return (
        f"Random weights for {', '.join(random)}: these numbers are NOT transfer learning "
        f"(ImageNet weights were not used; see features.weights in docs/configuration.md)."
    )


def format_cell(row: dict, key: str) -> str:
    """``row[key]`` as the tables show it (percentages, intervals, settings; None as "-")."""
    value = row[key]
    if value is None:
        return "-"
    if key == "test_accuracy" and row.get("test_acc_low") is not None:
        return f"{100 * value:.1f} % ({100 * row['test_acc_low']:.1f}-{100 * row['test_acc_high']:.1f})"
    if key == "cv_accuracy" and row.get("cv_std") is not None:
        return f"{100 * value:.1f} % ± {100 * row['cv_std']:.1f}"
    if key in _PERCENT:
        return f"{100 * value:.1f} %"
    if key == "tied_with_best":
        return "yes" if value else ""
    if key == "predict_seconds_per_1000":
        return f"{value:.3f}"  # seconds per 1,000 samples = milliseconds per sample
    if key == "params":  # a list (an ensemble's members) by its length: the names are in results.csv and the page
        return " ".join(f"{name}={len(setting) if isinstance(setting, list) else setting}"
                        for name, setting in value.items())
    if key == "classifier" and row.get("method"):  # its form at scale (svm-rbf: Nystroem features)
        return f"{value}*"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def format_table(rows: list[dict], markdown: bool = False) -> str:
    """The ranked results as aligned text (or a Markdown table), best rows marked; a classifier
    that ran in its form at scale (``method``) is starred, and the star explained below."""
    header = [title for _, title in SHOWN]
    body = [[format_cell(row, key) for key, _ in SHOWN] for row in rank_rows(rows)]
    methods = sorted({f"* {row['classifier']}: {row['method']}" for row in rows if row.get("method")})
    if markdown:
        lines = [header, ["---"] * len(header), *body]
        return "\n".join(["| " + " | ".join(line) + " |" for line in lines] + ([""] if methods else []) + methods)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join(["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                      for line in [header, *body]] + methods)


def finetune_summary(rows: list[dict]) -> str:
    """Fine-tuning against the frozen classifiers, in words; empty without map-head rows.

    Map-head rows are those with ``recompute_seconds`` (see the fit stage). The winner is
    decided by cross-validation accuracy, like every choice in the report; both test
    accuracies are given.
    """
    heads = rank_rows([row for row in rows if row.get("recompute_seconds") is not None])
    frozen = rank_rows([row for row in rows if row.get("recompute_seconds") is None])
    if not heads:
        return ""
    lines = []
    for row in heads:
        views = f", {row['n_views']} of them augmented views" if row.get("n_views") else ""
        lines.append(
            f"Fine-tuned {row['backbone']} after {row['tap']} ({row['classifier']}): test accuracy "
            f"{100 * row['test_accuracy']:.1f} % (cv {100 * row['cv_accuracy']:.1f} %); {row['epochs']} epochs on "
            f"{row['n_train'] + row['n_val']} rows{views}, {row['fit_seconds']:.1f} s on cached maps. Running the "
            f"frozen layers up to {row['tap']} in every epoch instead would have added {row['recompute_seconds']:.1f} s "
            f"({row['frozen_ms_per_image']:.2f} ms per image, measured, x {row['epochs']} epochs x "
            f"{row['n_train'] + row['n_val']} rows)."
        )
    if frozen:
        head, best = heads[0], frozen[0]
        won = (f"fine-tuning after {head['tap']}" if head["cv_accuracy"] > best["cv_accuracy"]
               else f"a frozen classifier on {best['tap']}")
        lines.append(
            f"Best frozen classifier: {best['backbone']} {best['tap']}/{best['pooling']} {best['classifier']}, "
            f"test accuracy {100 * best['test_accuracy']:.1f} % (cv {100 * best['cv_accuracy']:.1f} %). "
            f"On these data {won} won (by cv accuracy)."
        )
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    """All rows, best first, one column per ``COLUMNS`` entry (``params`` as JSON)."""
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**row, "params": json.dumps(row["params"])} for row in rank_rows(rows))


def new_figure(**kwargs):
    """A matplotlib Figure that draws to files only (no pyplot: no display, no global state).

    Imported here, not at the top: matplotlib costs every command half a second of
    start-up, and only the report draws.
    """
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _banner(figure, banner: str) -> None:
    """The random-weights warning on the figure itself, since plots travel without the report."""
    if banner:
        figure.suptitle(banner, color="firebrick", fontsize=8, wrap=True)


def plot_accuracy_by_depth(rows: list[dict], path: Path | None = None, banner: str = ""):
    """Test accuracy against tap depth: one panel per backbone, one line per classifier; a
    matplotlib Figure, also written to ``path`` as PNG when given."""
    backbones = list(dict.fromkeys(row["backbone"] for row in rows))  # in config order
    figure = new_figure(figsize=(4.5 * len(backbones), 3.6))
    axes = figure.subplots(1, len(backbones), sharey=True, squeeze=False)
    several_poolings = len({row["pooling"] for row in rows}) > 1
    for axis, backbone in zip(axes[0], backbones):
        mine = [row for row in rows if row["backbone"] == backbone]
        taps = sorted({(row["depth"], row["tap"]) for row in mine})
        position = {tap: index for index, (_, tap) in enumerate(taps)}
        for line in sorted({(row["classifier"], row["pooling"]) for row in mine}):
            points = sorted(
                (position[row["tap"]], 100 * row["test_accuracy"])
                for row in mine
                if (row["classifier"], row["pooling"]) == line
            )
            axis.plot(*zip(*points), marker="o", label=f"{line[0]} ({line[1]})" if several_poolings else line[0])
        axis.set_xticks(range(len(taps)), [tap for _, tap in taps])
        axis.set_title(f"{backbone} ({mine[0]['weights']})", fontsize=10)
        axis.set_xlabel("tap (shallow to deep)")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=8, loc="best")
    _banner(figure, banner)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120, format="png")
    return figure


def plot_confusion_matrix(row: dict, classes: list[str], path: Path, banner: str = "") -> None:
    """The test confusion matrix of ``row`` (rows: true class, columns: predicted),
    normalised per true class, with counts written in the cells when they fit."""
    counts = np.array(row["confusion_matrix"])
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = min(12.0, 2.5 + 0.45 * len(classes))
    figure = new_figure(figsize=(size, size))
    axis = figure.subplots()
    axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if len(classes) <= 30:
        for (true, predicted), count in np.ndenumerate(counts):
            axis.text(predicted, true, str(count), ha="center", va="center", fontsize=7,
                      color="white" if shares[true, predicted] > 0.5 else "black")
        axis.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
        axis.set_yticks(range(len(classes)), classes, fontsize=7)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(
        f"{row['backbone']} {row['tap']}/{row['pooling']} {row['classifier']}: "
        f"test accuracy {100 * row['test_accuracy']:.1f} %", fontsize=9,
    )
    _banner(figure, banner)
    figure.tight_layout()
    figure.savefig(path, dpi=120, format="png")


def write_markdown(rows: list[dict], path: Path, plots: dict[str, str], banner: str = "",
                   notes: dict[str, str] | None = None) -> None:
    """``report.md``: the banner (if any), the best model, the ranked table, ``notes``
    (heading -> paragraph) and the plots.

    ``plots`` maps a caption to a PNG file name beside the report.
    """
    best = best_row(rows)
    parts = ["# Which layer, which classifier", ""]
    if banner:
        parts += [f"> **{banner}**", ""]
    ties = tie_summary(rows)
    parts += [
        f"Best: **{best['backbone']} {best['tap']}/{best['pooling']} {best['classifier']}** "
        f"({format_cell(best, 'params')}), test accuracy {format_cell(best, 'test_accuracy')}, "
        f"model `{best['model']}`." + (f" {ties}" if ties else ""),
        "",
        f"Settings and the best rows are chosen by cross-validation accuracy on the training "
        f"split (cv acc, ± its standard deviation across the folds; equal scores go to the simpler classifier, "
        f"then the shallower tap); the test split is used once per model, for test acc (with its "
        f"{CONFIDENCE:.0%} interval over the test images), macro F1 and top-5. tied: not distinguishable from the "
        f"best row on the test images (McNemar's exact test). ms/img: prediction time per sample on the codes.",
        "",
        format_table(rows, markdown=True),
        "",
    ]
    summary = finetune_summary(rows)
    if summary:
        parts += ["## Fine-tuning or a frozen classifier", "", summary.replace("\n", "\n\n"), ""]
    for heading, note in (notes or {}).items():
        parts += [f"## {heading}", "", note, ""]
    for caption, name in plots.items():
        parts += [f"![{caption}]({name})", ""]
    path.write_text("\n".join(parts))
