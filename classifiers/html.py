"""``report.html``: the report as one self-contained page.

Everything is inside the file (styles, the sorting script, plots and thumbnails as data
URIs), so it opens from disk in any browser, with no network, and can be mailed or
archived as it is. The page holds the best model in a sentence, the sortable results
table, a heatmap of test accuracy by tap and classifier, the plots, per-class metrics and
galleries of images (the best model's mistakes, suspect training labels), the data review
(near-duplicates and train/test leaks, outliers, class counts, a map of the codes:
``classifiers.codesmap``), and the fine-tuning summary when fine-tuning ran.

Opened as ``report.html#selftest=<column>:<ascending|descending>``, the page checks itself
once loaded: it records script errors, counts thumbnails that did not decode, sorts the
results table by ``<column>`` with clicks on its header, and writes what it found into
``<pre id="selftest">`` (the browser test reads it from the DOM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

import numpy as np

from .codesmap import STYLE as MAP_STYLE
from .codesmap import CodesMap, render_map
from .table import SHOWN, best_row, finetune_summary, format_cell, rank_rows, tie_summary

__all__ = ["Card", "Gallery", "Pair", "DataReviewSection", "render_page"]


@dataclass
class Card:
    """One image of a gallery: its name (id or path), its thumbnail (a data URI, or None
    when the image could not be read) and lines of caption."""

    name: str
    thumbnail: str | None
    lines: list[str]


@dataclass
class Gallery:
    """A section of images: a title, a note on how to read it (or why it is empty), and
    groups of cards under headings."""

    title: str
    note: str
    groups: list[tuple[str, list[Card]]] = field(default_factory=list)


@dataclass
class Pair:
    """Two images side by side (a near-duplicate pair) and a line on what they are."""

    first: Card
    second: Card
    caption: str


@dataclass
class DataReviewSection:
    """The "Data review" section: a note on what was reviewed (and the leaks, or why
    nothing was), groups of pairs under headings, the outliers, the images per class and
    split (``counts``: split -> per-class counts; ``rare``: classes flagged as having few
    training images), and the map; the parts left out are not shown."""

    note: str
    pairs: list[tuple[str, list[Pair]]] = field(default_factory=list)
    outliers: Gallery | None = None
    classes: list[str] = field(default_factory=list)
    counts: dict[str, list[int]] = field(default_factory=dict)
    rare: list[bool] = field(default_factory=list)
    codes_map: CodesMap | None = None


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; margin: 1.2em 0 0.4em; }
.banner { background: #fde8e8; border: 1px solid firebrick; color: firebrick; padding: 0.6em; font-weight: bold; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-order="ascending"]::after { content: " \\25B2"; }
table.sortable th[data-order="descending"]::after { content: " \\25BC"; }
tr.best td { font-weight: bold; }
td.tied { outline: 2px solid #e6550d; outline-offset: -2px; }
figure { margin: 0; font-size: 11px; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; }
.plots figure { max-width: 49%; } .plots img { max-width: 100%; max-height: 560px; border: 1px solid #eee; }
.cards { display: flex; flex-wrap: wrap; gap: 8px; }
.cards figure { width: 112px; overflow-wrap: anywhere; }
.cards img { width: 96px; height: 96px; object-fit: contain; background: #f3f3f3; display: block; }
.missing { width: 96px; height: 96px; background: #f3f3f3; color: #888; display: flex; align-items: center;
           justify-content: center; }
.note { color: #555; }
.pair { display: flex; gap: 4px; }
.cards > .pairbox { border: 1px solid #eee; padding: 4px; width: 244px; font-size: 11px; overflow-wrap: anywhere; }
"""

SCRIPT = """
"use strict";
const errors = [];
window.addEventListener("error", (event) => errors.push(String(event.message)));

function sortTable(header) {
  const table = header.closest("table"), body = table.tBodies[0];
  const column = Array.from(header.parentNode.children).indexOf(header);
  const order = header.dataset.order === "descending" ? "ascending" : "descending";
  table.querySelectorAll("th").forEach((th) => delete th.dataset.order);
  header.dataset.order = order;
  const key = (row) => row.children[column].dataset.sort ?? row.children[column].textContent;
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = key(a), y = key(b), numbers = x !== "" && y !== "" && !isNaN(x) && !isNaN(y);
    const compared = numbers ? Number(x) - Number(y) : x.localeCompare(y);
    return order === "ascending" ? compared : -compared;
  });
  rows.forEach((row) => body.appendChild(row));
}

document.querySelectorAll("table.sortable th").forEach((th) => th.addEventListener("click", () => sortTable(th)));

window.addEventListener("load", () => {
  const match = location.hash.match(/^#selftest=([^:]*):(ascending|descending)$/);
  if (!match) return;
  const images = Array.from(document.images);
  const header = document.querySelector(`table.sortable th[data-key="${decodeURIComponent(match[1])}"]`);
  for (let click = 0; header && click < 2 && header.dataset.order !== match[2]; click++) header.click();
  const found = {errors, images: images.length, broken: images.filter((image) => !image.naturalWidth).length,
                 sorted: header ? header.dataset.order : null};
  const out = document.createElement("pre");
  out.id = "selftest";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
"""


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _results_table(rows: list[dict]) -> str:
    """Every row, best first, sortable by any column (a click; a second click reverses)."""
    header = "".join(f'<th data-key="{key}">{escape(title)}</th>' for key, title in SHOWN)
    body = []
    for row in rank_rows(rows):
        cells = []
        for key, _ in SHOWN:
            value = row[key]
            sort = f' data-sort="{value}"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            cells.append(f"<td{sort}>{escape(format_cell(row, key))}</td>")
        best = ' class="best"' if row["best"] == "overall" else ""
        body.append(f"<tr{best}>{''.join(cells)}</tr>")
    return (f'<table class="sortable" id="results"><thead><tr>{header}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _heatmaps(rows: list[dict]) -> str:
    """Test accuracy by tap (rows, shallow to deep) and classifier (columns), one table per
    backbone, each cell shaded from the backbone's lowest accuracy (white) to its highest;
    cells tied with the best row (``rank_rows``) are outlined and marked with a ≈."""
    parts = []
    rows = rank_rows(rows)
    several_poolings = len({row["pooling"] for row in rows}) > 1
    for backbone in dict.fromkeys(row["backbone"] for row in rows):
        mine = [row for row in rows if row["backbone"] == backbone]
        taps = sorted({(row["depth"], row["tap"], row["pooling"]) for row in mine})
        names = list(dict.fromkeys(row["classifier"] for row in mine))
        by_cell = {(row["tap"], row["pooling"], row["classifier"]): row for row in mine}
        accuracies = [row["test_accuracy"] for row in mine]
        low, high = min(accuracies), max(accuracies)
        lines = ["<tr><th>tap</th>" + "".join(f"<th>{escape(name)}</th>" for name in names) + "</tr>"]
        for _, tap, pooling in taps:
            label = f"{tap}/{pooling}" if several_poolings else tap
            cells = []
            for name in names:
                row = by_cell.get((tap, pooling, name), {})
                value, tied = row.get("test_accuracy"), row.get("tied_with_best")
                shade = 0.0 if value is None or high == low else (value - low) / (high - low)
                mark = (' class="tied" title="tied with the best row on the test images"', " ≈") if tied else ("", "")
                cells.append(f'<td{mark[0]} style="background: rgba(33, 113, 181, {0.75 * shade:.2f})">'
                             f'{_percent(value)}{mark[1]}</td>')
            lines.append(f"<tr><td>{escape(label)}</td>{''.join(cells)}</tr>")
        parts.append(f"<h3>{escape(backbone)} ({escape(mine[0]['weights'])})</h3><table>{''.join(lines)}</table>")
    return "".join(parts)


def _class_table(row: dict, classes: list[str]) -> str:
    """Per class, from the best model's test confusion matrix: accuracy (its test images
    classified right: the class's recall), precision, F1 and support (its test images)."""
    counts = np.array(row["confusion_matrix"])
    right = np.diag(counts)
    support, predicted = counts.sum(axis=1), counts.sum(axis=0)
    recall = right / np.maximum(support, 1)
    precision = right / np.maximum(predicted, 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    header = "".join(f'<th data-key="{key}">{key}</th>' for key in ("class", "accuracy", "precision", "F1", "support"))
    body = "".join(
        f'<tr><td>{escape(name)}</td><td data-sort="{r:.4f}">{_percent(r)}</td><td data-sort="{p:.4f}">{_percent(p)}'
        f'</td><td data-sort="{f:.4f}">{_percent(f)}</td><td>{n}</td></tr>'
        for name, r, p, f, n in zip(classes, recall, precision, f1, support)
    )
    return f'<table class="sortable" id="classes"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def _gallery(gallery: Gallery, anchor: str, level: int = 2) -> str:
    parts = [f'<h{level} id="{anchor}">{escape(gallery.title)}</h{level}>',
             f'<p class="note">{escape(gallery.note)}</p>']
    for heading, cards in gallery.groups:
        parts.append(f"<h3>{escape(heading)}</h3>" if heading else "")
        parts.append(f'<div class="cards">{"".join(_figure(card) for card in cards)}</div>')
    return "\n".join(parts)


def _figure(card: Card) -> str:
    picture = (f'<img src="{card.thumbnail}" alt="{escape(card.name)}">' if card.thumbnail
               else '<div class="missing">no image</div>')
    caption = "<br>".join(escape(line) for line in [card.name, *card.lines])
    return f"<figure>{picture}<figcaption>{caption}</figcaption></figure>"


def _data_review(review: DataReviewSection) -> str:
    """Near-duplicate pairs (leaks first) side by side, the outliers, the class counts and the map."""
    parts = ['<h2 id="data-review">Data review</h2>', f'<p class="note">{escape(review.note)}</p>']
    for heading, pairs in review.pairs:
        boxes = "".join(f'<div class="pairbox"><div class="pair">{_figure(pair.first)}{_figure(pair.second)}</div>'
                        f"{escape(pair.caption)}</div>" for pair in pairs)
        parts.append(f'<h3>{escape(heading)}</h3><div class="cards">{boxes}</div>')
    if review.outliers:
        parts.append(_gallery(review.outliers, "outliers", level=3))
    if review.counts:
        splits = list(review.counts)
        header = "".join(f"<th>{escape(name)}</th>" for name in ("class", *splits))
        body = "".join(f"<tr><td>{escape(name)}{' (few)' if rare else ''}</td>"
                       + "".join(f"<td>{review.counts[split][index]}</td>" for split in splits) + "</tr>"
                       for index, (name, rare) in enumerate(zip(review.classes, review.rare)))
        parts += ["<h3>Images per class</h3>", '<p class="note">(few): fewer training images than a tenth of the '
                  'mean per class.</p>', f'<table id="class-counts"><tr>{header}</tr>{body}</table>']
    if review.codes_map:
        parts += ["<h3>A map of the codes</h3>", render_map(review.codes_map)]
    return "\n".join(parts)


def render_page(rows: list[dict], classes: list[str], plots: dict[str, str], banner: str,
                galleries: list[Gallery], review: DataReviewSection | None = None,
                notes: dict[str, str] | None = None) -> str:
    """The page as a string.

    Parameters
    ----------
    rows : list of dict
        The results rows (``classifiers.report``).
    classes : list of str
        Class names, in label order.
    plots : dict
        Caption -> image data URI.
    banner : str
        The random-weights warning, or empty.
    galleries : list of Gallery
        Image sections (mistakes, suspect labels), in page order.
    review : DataReviewSection, optional
        The data review, after the galleries.
    notes : dict, optional
        Heading -> paragraph, after the plots (the learning curves' reading).
    """
    best = best_row(rows)
    sentence = (
        f"Best model: {best['backbone']} {best['tap']}/{best['pooling']} {best['classifier']} "
        f"({format_cell(best, 'params')}), chosen by cross-validation accuracy on the training split "
        f"({format_cell(best, 'cv_accuracy')}); on the test split it is right {format_cell(best, 'test_accuracy')} of the time "
        f"(model {best['model']}). {tie_summary(rows)}"
    ).rstrip()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Which layer, which classifier: {escape(best['backbone'])} {escape(best['tap'])}</title>",
        f"<style>{STYLE}{MAP_STYLE}</style></head><body>",
        "<h1>Which layer, which classifier</h1>",
        f'<p class="banner">{escape(banner)}</p>' if banner else "",
        f"<p>{escape(sentence)}</p>",
        "<h2>Results</h2>",
        '<p class="note">One row per classifier tuned on one (backbone, tap, pooling), best first; click a column '
        "header to sort by it. cv acc (± its standard deviation across the folds) chooses the settings and the best "
        "rows, equal scores going to the simpler classifier, then the shallower tap; the test split is used once per "
        "model. test acc: with its 95 % interval over the test images. tied: not distinguishable from the best row on "
        "the test images (McNemar's exact test, p >= 0.05). ms/img: prediction time per sample on the codes.</p>",
        _results_table(rows),
        "<h2>Test accuracy by tap and classifier</h2>",
        '<p class="note">Outlined, with a ≈: tied with the best row on the test images.</p>',
        _heatmaps(rows),
        '<h2>Plots</h2><div class="plots">',
        *(f'<figure><img src="{uri}" alt="{escape(caption)}"><figcaption>{escape(caption)}</figcaption></figure>'
          for caption, uri in plots.items()),
        "</div>",
        *(f"<h2>{escape(heading)}</h2><p>{escape(note)}</p>" for heading, note in (notes or {}).items()),
        "<h2>Per class (best model, test split)</h2>",
        '<p class="note">accuracy: the share of the class\'s test images classified right (its recall); precision: '
        "the share of the images predicted as the class that are of it; support: the class's test images.</p>",
        _class_table(best, classes),
        *(_gallery(gallery, f"gallery{index}") for index, gallery in enumerate(galleries)),
        _data_review(review) if review else "",
    ]
    summary = finetune_summary(rows)
    if summary:
        parts += ["<h2>Fine-tuning or a frozen classifier</h2>", *(f"<p>{escape(line)}</p>" for line in summary.splitlines())]
    parts += [f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(part for part in parts if part)
