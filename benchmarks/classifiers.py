"""Which classifier on which layer: the zoo's default grids against one untuned logreg.

For every complete (tap, pooling) in each feature store given, and the fused cells that
``fit`` adds (``classifiers.fuse``: the store's tables side by side, fitted with the
classifiers of the best two single-table cells) and the stacked ensemble of the best
cells (``classifiers.ensemble``, a row of its own), this fits the baseline
(standardised codes, LogisticRegression(C=0.1), no search: what ``../shared/bench``
measured) and every zoo entry asked for, tuned by stratified CV on the train (+ val) rows,
then scores each once on the test rows. It prints a Markdown table, one row per cell
(named by its store file, tap and pooling): test accuracy per classifier (the highest
in bold), the classifier that cross-validation picks among them (what the pipeline's
``best`` would be, chosen without the test rows), its test accuracy, and its gain over
the baseline; ``--out`` writes the same table to a file.

    python benchmarks/classifiers.py cache/fashion-vgg16-*.h5 --out benchmarks/fashion.md
    python benchmarks/classifiers.py STORE.h5 --models logreg svm-rbf --cv-folds 3 --n-jobs 2

Not a test: it takes minutes to hours, depending on the stores and the models.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from classifiers import (  # noqa: E402
    DEFAULT_PREPROCESSING,
    ENSEMBLE,
    ZOO,
    benchmark,
    load_fused_codes,
    make_model,
    parts_of,
    score,
)
from features import MAP, FeatureStore  # noqa: E402

DEFAULT_MODELS = ["logreg", "linsvm", "svm-rbf", "sgd", "ridge", "knn"]
BASELINE = {"C": 0.1}


def baseline_accuracy(codes, seed: int) -> float:
    """Test accuracy of StandardScaler + LogisticRegression(C=0.1), fitted on the fit rows."""
    model = make_model("logreg", ["standard"], random_state=seed, params=BASELINE)
    return score(model.fit(codes.X_fit, codes.y_fit), codes.X_test, codes.y_test)["test_accuracy"]


def benchmark_store(path: Path, models: list[str], args) -> list[dict]:
    """One row per cell (a complete pooled (tap, pooling) of the store, a fused cell, the ensemble):
    baseline and tuned test accuracies, the zoo's tuned as ``fit`` tunes them
    (``classifiers.benchmark``)."""
    with FeatureStore(path) as store:
        pooled = [f"{tap}/{pooling}" for tap, pooling in store.available() if pooling != MAP]  # maps: map heads
        results = benchmark(store, models, pooled, progress=False, preprocessing=args.preprocessing,
                            cv_folds=args.cv_folds, n_jobs=args.n_jobs, seed=args.seed)
    rows, baselines = {}, {}  # baselines by parts: the ensemble's often are the fused cell's
    for cell in results.rows:
        key = (cell["tap"], cell["pooling"], cell["classifier"] == ENSEMBLE)
        if key not in rows:
            parts = tuple(parts_of(cell))
            if parts not in baselines:
                codes = load_fused_codes(path, list(parts))
                baselines[parts] = len(codes.y_fit), len(codes.y_test), baseline_accuracy(codes, args.seed)
            n_train, n_test, baseline = baselines[parts]
            rows[key] = {"store": path.name, "backbone": cell["backbone"], "weights": cell["weights"], "tap": key[0],
                         "pooling": key[1], "n_train": n_train, "n_test": n_test, "baseline": baseline}
        rows[key][cell["classifier"]] = cell["test_accuracy"]
        rows[key][f"{cell['classifier']} cv"] = cell["cv_accuracy"]
    order = [(*name.split("/", 1), False) for name in pooled]  # the store's tables in its order, then the others
    return [rows[key] for key in order] + [row for key, row in rows.items() if key not in order]


def markdown_table(rows: list[dict], models: list[str]) -> str:
    """Test accuracy per cell (rows) and classifier (columns); the best of each row in bold, "-"
    where the cell was not fitted with that classifier (a fused cell takes the best two)."""
    models = models + [ENSEMBLE] * any(ENSEMBLE in row for row in rows)
    header = ["store", "backbone", "weights", "tap", "pooling", "train", "test", "untuned logreg", *models,
              "CV picks", "its test", "gain"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        fitted = [name for name in models if name in row]
        best = max(fitted, key=lambda name: row[name])
        picked = max(fitted, key=lambda name: row[f"{name} cv"])
        cells = ["-" if name not in row else f"**{100 * row[name]:.1f}**" if name == best else
                 f"{100 * row[name]:.1f}" for name in models]
        lines.append("| " + " | ".join([
            row["store"], row["backbone"], row["weights"], row["tap"], row["pooling"], str(row["n_train"]),
            str(row["n_test"]),
            f"{100 * row['baseline']:.1f}", *cells, picked, f"{100 * row[picked]:.1f}",
            f"{100 * (row[picked] - row['baseline']):+.1f}",
        ]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stores", nargs="+", type=Path, help="feature store files (.h5) written by extract")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list(ZOO), metavar="MODEL",
                        help=f"zoo entries (default: {' '.join(DEFAULT_MODELS)}; also: linear-head mlp-head)")
    parser.add_argument("--preprocessing", nargs="*", default=list(DEFAULT_PREPROCESSING),
                        help=f"chain, e.g. ssqrt l2 (default: {' '.join(DEFAULT_PREPROCESSING)})")
    parser.add_argument("--cv-folds", type=int, default=5)
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # each model's line, as fit logs it
    rows = [row for path in args.stores for row in benchmark_store(path, args.models, args)]
    table = markdown_table(rows, args.models)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
