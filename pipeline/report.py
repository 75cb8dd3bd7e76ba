"""The report stage: the ranked results table (printed and ``results.csv``), the plots and
``report.md``.
"""

from __future__ import annotations

from classifiers import (
    best_row,
    finetune_summary,
    format_table,
    plot_accuracy_by_depth,
    plot_confusion_matrix,
    write_csv,
    write_markdown,
)

from .config import Config
from .stages import CONFUSION_NAME, PLOT_NAME, read_json, run_folder, write_atomic

__all__ = ["report", "weights_banner"]


def weights_banner(rows: list[dict]) -> str:
    """A warning when any result came from random weights, empty otherwise."""
    random = sorted({row["backbone"] for row in rows if not row["pretrained"]})
    if not random:
        return ""
    return (
        f"Random weights for {', '.join(random)}: these numbers are NOT transfer learning "
        f"(ImageNet weights were not used; see features.weights in the README)."
    )


def report(config: Config, progress: bool = True) -> None:
    """The ranked results table (printed and ``results.csv``), the plots and ``report.md``."""
    run_dir = run_folder(config)
    results = read_json(run_dir / "results.json", "fit")
    rows = results["rows"]
    banner = weights_banner(rows)
    plots = {"test accuracy by depth": PLOT_NAME, "confusion matrix of the best model": CONFUSION_NAME}
    write_atomic(run_dir / "results.csv", lambda partial: write_csv(rows, partial))
    write_atomic(run_dir / PLOT_NAME, lambda partial: plot_accuracy_by_depth(rows, partial, banner))
    write_atomic(run_dir / CONFUSION_NAME,
                  lambda partial: plot_confusion_matrix(best_row(rows), results["classes"], partial, banner))
    write_atomic(run_dir / "report.md", lambda partial: write_markdown(rows, partial, plots, banner))
    print(format_table(rows))
    summary = finetune_summary(rows)
    if summary:
        print(f"\n{summary}")
    if banner:
        print(f"\n*** {banner} ***")
