"""CNN codes -> predictions: the classifier zoo, torch heads, model selection, metrics,
persistence and the benchmark report.

Codes are read only through ``features``' reader API (``read_codes``, ``FeatureStore``).
"""

from .benchmark import Codes, benchmark_model, load_codes
from .chunks import fit_in_chunks
from .finetune import FinetuneHead
from .heads import TorchHead
from .metrics import score, score_blocks
from .outofcore import ChunkReader, learns_in_chunks, select_in_chunks
from .parallel import BACKENDS, check_backend, search_backend
from .persistence import ModelFileError, feature_spec, load_model, read_sidecar, save_model, sidecar_path
from .predict import predict_table
from .preprocessing import DEFAULT_PREPROCESSING, PREPROCESSING, check_preprocessing
from .report import (
    best_row,
    finetune_summary,
    format_table,
    plot_accuracy_by_depth,
    plot_confusion_matrix,
    rank_rows,
    write_csv,
    write_markdown,
)
from .selection import Selection, select_model
from .zoo import MAPS, ZOO, check_grid, make_model, param_grid

__all__ = [
    "ZOO",
    "MAPS",
    "PREPROCESSING",
    "DEFAULT_PREPROCESSING",
    "make_model",
    "param_grid",
    "check_grid",
    "check_preprocessing",
    "TorchHead",
    "FinetuneHead",
    "fit_in_chunks",
    "Selection",
    "select_model",
    "BACKENDS",
    "check_backend",
    "search_backend",
    "score",
    "score_blocks",
    "ChunkReader",
    "learns_in_chunks",
    "select_in_chunks",
    "Codes",
    "load_codes",
    "benchmark_model",
    "ModelFileError",
    "feature_spec",
    "save_model",
    "load_model",
    "read_sidecar",
    "sidecar_path",
    "predict_table",
    "rank_rows",
    "best_row",
    "format_table",
    "finetune_summary",
    "write_csv",
    "plot_accuracy_by_depth",
    "plot_confusion_matrix",
    "write_markdown",
]
