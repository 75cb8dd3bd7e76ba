"""The report: ranking by CV accuracy, the table, results.csv, the plots, report.md."""

import csv

import numpy as np
import pytest

from classifiers import best_row, format_table, plot_accuracy_by_depth, plot_confusion_matrix, rank_rows, write_csv
from classifiers import write_markdown


def _row(backbone, tap, depth, classifier, cv, test, fit_seconds=1.0):
    return {
        "backbone": backbone, "weights": "random(seed=0)", "pretrained": False, "tap": tap, "depth": depth,
        "pooling": "avg", "classifier": classifier, "preprocessing": "standard", "params": {"C": 0.1},
        "n_features": 8, "n_train": 30, "n_val": 0, "n_test": 10, "cv_folds": 3, "candidates": 3,
        "cv_accuracy": cv, "test_accuracy": test, "balanced_accuracy": test, "macro_f1": test,
        "top5_accuracy": None, "log_loss": None, "confusion_matrix": [[5, 0], [1, 4]],
        "search_seconds": 3 * fit_seconds, "fit_seconds": fit_seconds, "predict_seconds_per_1000": 0.01,
        "model_bytes": 1234, "model": f"models/{backbone}/{tap}-avg-{classifier}.joblib",
    }


@pytest.fixture
def rows():
    return [
        _row("vgg16", "pool3", 3, "logreg", cv=0.80, test=0.95),
        _row("vgg16", "pool5", 5, "logreg", cv=0.90, test=0.85),
        _row("vgg16", "pool3", 3, "ridge", cv=0.90, test=0.80, fit_seconds=0.1),
        _row("resnet50", "layer3", 3, "logreg", cv=0.85, test=0.90),
        _row("resnet50", "pool", 5, "logreg", cv=0.70, test=0.70),
    ]


def test_best_is_chosen_by_cv_accuracy_then_fit_time_not_by_test(rows):
    ranked = rank_rows(rows)
    assert [(r["tap"], r["classifier"], r["best"]) for r in ranked] == [
        ("pool3", "ridge", "overall"), ("pool5", "logreg", ""), ("layer3", "logreg", "backbone"),
        ("pool3", "logreg", ""), ("pool", "logreg", ""),
    ]
    assert best_row(rows)["classifier"] == "ridge"


def test_table_csv_and_markdown(rows, tmp_path):
    table = format_table(rows).splitlines()
    assert table[0].split()[:4] == ["backbone", "tap", "pooling", "classifier"]
    assert "overall" in table[1] and "90.0 %" in table[1] and "80.0 %" in table[1] and "C=0.1" in table[1]
    write_csv(rows, tmp_path / "results.csv")
    with open(tmp_path / "results.csv") as file:
        written = list(csv.DictReader(file))
    assert written[0]["best"] == "overall" and written[0]["params"] == '{"C": 0.1}'
    assert "confusion_matrix" not in written[0] and written[0]["top5_accuracy"] == ""
    write_markdown(rows, tmp_path / "report.md", {"by depth": "a.png", "confusion": "b.png"}, banner="Random!")
    report = (tmp_path / "report.md").read_text()
    assert "> **Random!**" in report and "![by depth](a.png)" in report and "![confusion](b.png)" in report
    assert "Best: **vgg16 pool3/avg ridge** (C=0.1), test accuracy 80.0 %" in report
    assert "| backbone | tap |" in report


def test_plots_are_png_files(rows, tmp_path):
    plot_accuracy_by_depth(rows, tmp_path / "depth.png", banner="Random!")
    plot_confusion_matrix(best_row(rows), ["cat", "dog"], tmp_path / "confusion.png")
    for name in ("depth.png", "confusion.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_rows_tied_with_the_best_on_the_test_images_are_marked_and_named(rows, tmp_path):
    from classifiers import tie_summary
    from classifiers.html import render_page
    from classifiers.metrics import pack_outcomes

    truth = np.ones(1000, bool)
    outcomes = {  # right on the same images but for a few: a paired test tells these apart
        ("pool3", "ridge"): truth, ("pool5", "logreg"): np.arange(1000) >= 5,  # 5 fewer: tied
        ("layer3", "logreg"): np.arange(1000) >= 40,  # 40 fewer on the same images: not tied
        ("pool3", "logreg"): truth, ("pool", "logreg"): np.arange(1000) % 2 == 0,
    }
    for row in rows:
        right = outcomes[row["tap"], row["classifier"]]
        row.update(n_test=1000, test_correct=pack_outcomes(right), test_accuracy=right.mean(), test_acc_low=0.5,
                   test_acc_high=1.0)
    ranked = rank_rows(rows)
    assert [row["tied_with_best"] for row in ranked] == [True, True, False, True, False]
    assert ranked[1]["p_vs_best"] == pytest.approx(2 * 0.5**5) and ranked[2]["p_vs_best"] < 1e-9
    sentence = tie_summary(rows)
    assert sentence.startswith("Within noise: tied with 2 others on the 1,000 test images") and \
        "it is the simplest of them" in sentence  # ridge is the simplest classifier
    assert "100.0 % (50.0-100.0)" in format_table(rows).splitlines()[1]
    write_csv(rows, tmp_path / "results.csv")
    with open(tmp_path / "results.csv") as file:
        written = list(csv.DictReader(file))
    assert [row["tied_with_best"] for row in written] == ["True", "True", "False", "True", "False"]
    assert "test_correct" not in written[0] and written[0]["test_acc_low"] == "0.5"
    page = render_page(rows, ["cat", "dog"], {}, "", [])
    assert page.count('class="tied"') == 3 and "Within noise: tied with 2 others" in page
    for row in rows:  # the simplest tied row is named when it is not the best (now pool5's logreg: simpler than svm)
        row["classifier"] = "svm-rbf" if row["tap"] == "pool3" and row["classifier"] == "ridge" else row["classifier"]
    assert best_row(rows)["tap"] == "pool5"
    assert "the simplest of them is vgg16 pool3/avg logreg (C=0.1), test accuracy 100.0 % (50.0-100.0)" in \
        tie_summary(rows)  # the same classifier on a shallower tap
    for row in rows:
        del row["test_correct"]
    assert tie_summary(rows) == "" and rank_rows(rows)[0]["tied_with_best"] is None  # old results: nothing claimed
