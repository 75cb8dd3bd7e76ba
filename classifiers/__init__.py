"""CNN codes -> predictions: the classifier zoo, fitting and scoring, and reports.

Codes are read only through ``features.store``.
"""

from .benchmark import fit_and_score, train_test_codes
from .report import format_table, plot_accuracy_by_depth, write_csv, write_markdown
from .zoo import ZOO, make_classifier

__all__ = [
    "ZOO",
    "make_classifier",
    "train_test_codes",
    "fit_and_score",
    "format_table",
    "write_csv",
    "plot_accuracy_by_depth",
    "write_markdown",
]
