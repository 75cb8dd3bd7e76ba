"""The report stage: ``classifiers.write_report`` on the run's results (``results.csv``, the
plots, ``report.md``, ``report.html``, ``suspect_labels.csv``, ``duplicates.csv``,
``outliers.csv``), and the ranked table printed.
"""

from __future__ import annotations

import logging

from classifiers import best_row, finetune_summary, format_table, weights_banner, write_report
from features import open_source

from .config import Config
from .runfolder import read_json, run_folder

__all__ = ["report"]

log = logging.getLogger(__name__)


def _source(config: Config):
    """The run's images, for the report's thumbnails; None (a page without pictures) when
    they cannot be opened any more."""
    try:
        return open_source(**config.source())
    except (OSError, ValueError) as error:  # a moved folder, a dataset no longer downloadable
        log.warning("report: the images cannot be opened (%s); report.html names them without thumbnails", error)
        return None


def report(config: Config, progress: bool = True) -> None:
    """Every report file (``classifiers.write_report``) and the ranked table on standard output."""
    run_dir = run_folder(config)
    results = read_json(run_dir / "results.json", "fit")
    stores = read_json(run_dir / "features.json", "extract")
    rows = results["rows"]
    store = stores.get(best_row(rows)["backbone"], {}).get("store")
    write_report(run_dir, results, store, _source(config), progress)
    print(format_table(rows))
    summary = finetune_summary(rows)
    if summary:
        print(f"\n{summary}")
    banner = weights_banner(rows)
    if banner:
        print(f"\n*** {banner} ***")
