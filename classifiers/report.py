"""Results of a benchmark as a printed table, ``results.csv``, a plot and ``report.md``.

A row is one fitted classifier on one (backbone, tap, pooling): the dicts that
``fit_and_score`` returns, plus ``backbone``, ``weights`` and ``depth`` (tap order from
the input, for the plot's x axis).
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["COLUMNS", "sort_rows", "format_table", "write_csv", "plot_accuracy_by_depth", "write_markdown"]

COLUMNS = (
    "backbone", "weights", "tap", "depth", "pooling", "classifier",
    "n_features", "n_train", "n_test", "test_accuracy", "fit_seconds",
)
_SHOWN = (
    ("backbone", "backbone"), ("tap", "tap"), ("pooling", "pooling"), ("classifier", "classifier"),
    ("n_features", "features"), ("test_accuracy", "test acc"), ("fit_seconds", "fit s"),
)


def sort_rows(rows: list[dict]) -> list[dict]:
    """Best test accuracy first, each row marked ``best`` = overall / backbone / ''."""
    ordered = sorted(rows, key=lambda row: -row["test_accuracy"])
    seen_backbones = set()
    marked = []
    for rank, row in enumerate(ordered):
        best = "overall" if rank == 0 else "backbone" if row["backbone"] not in seen_backbones else ""
        seen_backbones.add(row["backbone"])
        marked.append({**row, "best": best})
    return marked


def _cell(row: dict, key: str) -> str:
    value = row[key]
    if key == "test_accuracy":
        return f"{100 * value:.1f} %"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def format_table(rows: list[dict], markdown: bool = False) -> str:
    """The sorted results as aligned text (or a Markdown table), best rows marked."""
    header = [title for _, title in _SHOWN] + ["best"]
    body = [[_cell(row, key) for key, _ in _SHOWN] + [row["best"]] for row in sort_rows(rows)]
    if markdown:
        lines = [header, ["---"] * len(header), *body]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in [header, *body])


def write_csv(rows: list[dict], path: Path) -> None:
    """All rows, best first, one column per ``COLUMNS`` entry plus ``best``."""
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[*COLUMNS, "best"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(sort_rows(rows))


def plot_accuracy_by_depth(rows: list[dict], path: Path, banner: str = "") -> None:
    """Test accuracy against tap depth: one panel per backbone, one line per classifier.

    The banner (random weights) goes on the figure too, since plots travel without the report.
    """
    backbones = list(dict.fromkeys(row["backbone"] for row in rows))  # in config order
    figure, axes = plt.subplots(
        1, len(backbones), figsize=(4.5 * len(backbones), 3.6), sharey=True, squeeze=False
    )
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
            axis.plot(*zip(*points), marker="o", label=f"{line[0]} ({line[1]})")
        axis.set_xticks(range(len(taps)), [tap for _, tap in taps])
        axis.set_title(f"{backbone} ({mine[0]['weights']})", fontsize=10)
        axis.set_xlabel("tap (shallow to deep)")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    if banner:
        figure.suptitle(banner, color="firebrick", fontsize=8, wrap=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120, format="png")
    plt.close(figure)


def write_markdown(rows: list[dict], path: Path, plot_name: str, banner: str = "") -> None:
    """``report.md``: the banner (if any), the sorted table and the plot, side by side."""
    parts = ["# Which layer, which classifier", ""]
    if banner:
        parts += [f"> **{banner}**", ""]
    parts += [format_table(rows, markdown=True), "", f"![test accuracy by depth]({plot_name})", ""]
    path.write_text("\n".join(parts))
