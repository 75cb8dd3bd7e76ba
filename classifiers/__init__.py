"""CNN codes -> predictions: the classifier zoo, torch heads, model selection, metrics,
persistence, the benchmark report and its review of the best model and of the data (``write_report``).

Codes are read only through ``features``' reader API (``read_codes``, ``FeatureStore``).
Names are imported from their modules on first use (PEP 562, through ``lazy_loader``), so that the zoo's names and
the settings' checks cost no scikit-learn or torch import.
"""

import lazy_loader

_MODULES = {
    "zoo": ["ZOO", "MAPS", "DEFAULT_MODELS", "SIMPLEST_FIRST", "make_model", "param_grid", "check_grid"],
    "tuning": ["Tuning"],
    "benchmarking": ["benchmark"],
    "results": ["Results"],
    "preprocessing": ["PREPROCESSING", "DEFAULT_PREPROCESSING", "check_preprocessing"],
    "heads": ["TorchHead"],
    "finetune": ["FinetuneHead"],
    "incremental": ["fit_in_blocks"],
    "selection": ["Selection", "select_model", "selection_splits"],
    "parallel": ["BACKENDS", "check_backend", "search_backend"],
    "metrics": ["METRICS", "score", "score_blocks", "class_probabilities", "wilson_interval", "mcnemar_pvalue",
                "unpack_outcomes"],
    "outofcore": ["BlockReader", "learns_in_blocks", "select_in_blocks"],
    "cells": ["Cell", "Codes", "load_codes", "load_fused_codes", "benchmark_model"],
    "fusion": ["ENSEMBLE", "FUSE_ALL", "DEFAULT_FUSE", "check_fuse", "parts_of", "fused_spec"],
    "ensemble": ["StackedCells", "stack_cells"],
    "learning_curve": ["CURVE_NAME", "CURVE_PLOT", "curve_rows", "learning_curve", "curve_summary"],
    "persistence": ["ModelFileError", "save_model", "load_model", "read_sidecar", "sidecar_path", "save_results",
                    "load_results"],
    "frozen": ["weights_of_store"],
    "predict": ["predict_table"],
    "table": ["REPORT_FILES", "rank_rows", "best_row", "tie_summary", "weights_banner", "format_table", "finetune_summary",
               "write_csv", "plot_accuracy_by_depth", "plot_confusion_matrix", "write_markdown"],
    "suspects": ["Suspects", "find_suspects"],
    "thumbnails": ["THUMBNAIL_SIZE", "thumbnail_uri"],
    "html": ["Card", "Gallery", "Pair", "DataReviewSection", "render_page"],
    "datareview": ["MAP_POINTS", "MAX_IMAGES", "DataReview", "review_codes", "reduce_codes", "class_counts", "map_codes"],
    "datasection": ["DUPLICATE_COLUMNS", "OUTLIER_COLUMNS", "MAX_PAIRS", "MAX_OUTLIERS", "CellReview", "review_cell"],
    "codesmap": ["CodesMap", "sprite_uri"],
    "report": ["MAX_MISTAKES", "MAX_SUSPECTS", "SUSPECT_COLUMNS", "write_report"],
}
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs=_MODULES)
