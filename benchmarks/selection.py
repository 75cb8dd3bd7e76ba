"""Model selection before and after a change: the same store, every default classifier, timed.

Runs ``classifiers.benchmark`` on one store and writes each row's choice, selection score,
test accuracy and seconds as JSON lines, so that two versions of the code (``--code``: a
checkout, ``git archive`` of an older commit; this one by default) can be compared on the
same codes in the same session:

    OMP_NUM_THREADS=1 python benchmarks/selection.py STORE --code OLD --label before --out sel.jsonl
    OMP_NUM_THREADS=1 python benchmarks/selection.py STORE --label after --out sel.jsonl
    python benchmarks/selection.py --table sel.jsonl

``OMP_NUM_THREADS=1``: on a machine shared with other work, torch's threads waiting for
each other made one MLP-head fit 9x slower (188 s against 20 s); one thread per process
(two processes run the searches) keeps the comparison about the code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def run(store: str, label: str, out: Path, codes: list[str] | None) -> None:
    import classifiers

    started = time.perf_counter()
    results = classifiers.benchmark(store, codes=codes, progress=False, n_jobs=2)
    total = time.perf_counter() - started
    with open(out, "a") as file:
        for row in results.rows:
            keep = {key: row.get(key) for key in ("tap", "pooling", "classifier", "params", "cv_accuracy", "cv_std",
                                                  "test_accuracy", "test_acc_low", "test_acc_high", "tied_with_best",
                                                  "cv_folds", "candidates", "search_seconds", "fit_seconds", "best")}
            file.write(json.dumps({"label": label, "total_seconds": round(total, 1), **keep}) + "\n")


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    labels = list(dict.fromkeys(row["label"] for row in rows))
    lines = ["| tap | classifier | " + " | ".join(f"{label}: setting, cv, test, search s" for label in labels) + " |",
             "| --- | --- | " + " | ".join("---" for _ in labels) + " |"]
    keys = list(dict.fromkeys((row["tap"], row["pooling"], row["classifier"]) for row in rows))
    for key in sorted(keys):
        cells = []
        for label in labels:
            found = [row for row in rows if row["label"] == label and (row["tap"], row["pooling"], row["classifier"]) == key]
            if not found:
                cells.append("")
                continue
            row = found[0]
            setting = " ".join(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
                               for name, value in row["params"].items())
            std = f" ± {100 * row['cv_std']:.1f}" if row.get("cv_std") is not None else ""
            best = " **best**" if row["best"] == "overall" else ""
            cells.append(f"{setting}, {100 * row['cv_accuracy']:.1f}{std}, {100 * row['test_accuracy']:.1f}{best}, "
                         f"{row['search_seconds']:.1f}")
        lines.append(f"| {key[0]}/{key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    totals = {label: next(row["total_seconds"] for row in rows if row["label"] == label) for label in labels}
    lines.append("")
    lines.append("Total seconds: " + ", ".join(f"{label} {seconds:.1f}" for label, seconds in totals.items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", nargs="?")
    parser.add_argument("--label", default="run")
    parser.add_argument("--out", type=Path, default=Path("selection.jsonl"))
    parser.add_argument("--codes", nargs="*", help="tap/pooling names (default: all)")
    parser.add_argument("--table", type=Path, help="print the comparison table of a JSON-lines file and exit")
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the checkout whose classifiers to run (default: this one)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code))
    if args.table:
        print(table(args.table))
    else:
        run(args.store, args.label, args.out, args.codes)


if __name__ == "__main__":
    main()
