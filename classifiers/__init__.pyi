"""The names ``classifiers`` exports, each imported from its module on first use.

One source of truth: ``classifiers/__init__.py`` hands this file to ``lazy_loader.attach_stub``,
and editors and type checkers read it as the package's interface. A new public name is one
line here (and in its module's ``__all__``).
"""

from .zoo import ZOO, MAPS, DEFAULT_MODELS, SIMPLEST_FIRST, make_model, param_grid, check_grid
from .tuning import Tuning, check_models
from .benchmarking import benchmark
from .results import Results
from .preprocessing import PREPROCESSING, DEFAULT_PREPROCESSING, check_preprocessing
from .heads import TorchHead
from .finetune import FinetuneHead
from .incremental import fit_in_blocks
from .selection import Selection, select_model, selection_splits
from .parallel import BACKENDS, check_backend, search_backend
from .metrics import METRICS, score, score_blocks, class_probabilities, wilson_interval, mcnemar_pvalue, unpack_outcomes
from .outofcore import BlockReader, learns_in_blocks, select_in_blocks
from .cells import Cell, Codes, load_codes, load_fused_codes, benchmark_model
from .fusion import ENSEMBLE, FUSE_ALL, DEFAULT_FUSE, check_fuse, parts_of, fused_spec
from .ensemble import StackedCells, stack_cells
from .learning_curve import CURVE_NAME, CURVE_PLOT, curve_rows, learning_curve, curve_summary
from .persistence import ModelFileError, save_model, load_model, read_sidecar, sidecar_path
from .predict import predict_table
from .table import (
    REPORT_FILES, rank_rows, best_row, tie_summary, weights_banner, format_table, finetune_summary, write_csv,
    plot_accuracy_by_depth, plot_confusion_matrix, write_markdown,
)
from .suspects import Suspects, find_suspects
from .thumbnails import THUMBNAIL_SIZE, thumbnail_uri
from .html import Card, Gallery, Pair, DataReviewSection, render_page
from .datareview import MAP_POINTS, MAX_IMAGES, DataReview, review_codes, reduce_codes, class_counts, map_codes
from .datasection import DUPLICATE_COLUMNS, OUTLIER_COLUMNS, MAX_PAIRS, MAX_OUTLIERS, CellReview, review_cell
from .codesmap import CodesMap, sprite_uri
from .report import MAX_MISTAKES, MAX_SUSPECTS, SUSPECT_COLUMNS, write_report
