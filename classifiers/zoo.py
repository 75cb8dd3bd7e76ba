"""The classifier zoo: named estimators with default hyper-parameter grids.

An entry is a name, a factory ``build(random_state) -> estimator`` and a small default
grid over that estimator's parameters, sized to cross-validate in seconds on a few
thousand codes. ``make_model`` puts the estimator behind a preprocessing chain in one
scikit-learn ``Pipeline`` (the estimator step is called ``classifier``), so that what is
tuned, fitted, saved and loaded is one object that takes raw codes. An entry that
``takes`` maps (``finetune``) trains on a tap's whole ``(C, H, W)`` maps (pooling ``none``)
and has no preprocessing: its first layers are the backbone's own.

Adding a classifier is one entry in ``ZOO``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import import_module

from features.errors import SettingError

from .preprocessing import DEFAULT_PREPROCESSING, make_preprocessing

__all__ = ["ZooEntry", "ZOO", "MAPS", "DEFAULT_MODELS", "SIMPLEST_FIRST", "simplicity", "SCALE_ROWS", "entry_for", "make_model", "param_grid",
           "estimator_params", "check_grid"]

STEP = "classifier"
"""Name of the estimator step in every zoo pipeline; grid keys get ``classifier__``."""
CODES, MAPS = "codes", "maps"
"""What an entry trains on: pooled codes (one row of numbers per image), or whole maps."""


@dataclass(frozen=True)
class ZooEntry:
    """A named classifier: its estimator class and settings, its default grid and a one-line summary.

    The class is named by its import path and imported when a model is built, so that the
    zoo's names are known (and a config checked) without loading scikit-learn or torch.
    ``seeded`` entries get ``random_state``. ``cost_exponent`` says how a fit's time grows
    with rows (time ~ rows ** exponent), for the time estimate before a long search.
    ``at_scale`` is what the entry runs as past ``SCALE_ROWS`` training rows, where its own
    cost grows too fast (it takes the same grid). ``held_out`` entries stop early on a
    held-out fold of their own, which model selection gives them (``classifiers.selection``).
    ``path`` (a name in ``classifiers.paths.PATHS``) walks a one-parameter grid as a
    regularisation path on each split, its work shared along the way; the grid then lists
    the strongest regularisation first. ``refine`` names a parameter whose coarse log grid
    is searched again at the geometric midpoints beside the best value (coarse to fine).
    """

    name: str
    estimator: str
    params: dict = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    description: str = ""
    takes: str = CODES
    seeded: bool = True
    cost_exponent: float = 1.0
    at_scale: ZooEntry | None = None
    held_out: bool = False
    path: str = ""
    refine: str = ""

    def build(self, random_state: int):
        """A fresh estimator of this entry."""
        module, name = self.estimator.rsplit(".", 1)
        seed = {"random_state": random_state} if self.seeded else {}
        return getattr(import_module(module), name)(**self.params, **seed)


def _log_grid(first: float, last: float, values: int) -> list[float]:
    """``values`` log-spaced numbers from ``first`` to ``last``, to three significant digits
    (plain arithmetic: the zoo is read without importing numpy)."""
    return [float(f"{first * (last / first) ** (step / (values - 1)):.3g}") for step in range(values)]


LOGREG_C = _log_grid(1e-6, 1e5, 23)
"""Logistic regression's C: half-decade steps over the range the linear-probe protocols
search (Kornblith et al. 2019: 1e-6 to 1e5), the strongest regularisation first, walked
as one warm-started path per fold (``classifiers.paths``)."""
RIDGE_ALPHA = _log_grid(1e6, 1e-2, 33)
"""Ridge's alpha: quarter-decade steps, the strongest first; one eigendecomposition per
fold scores them all."""

ZOO: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in (
        ZooEntry(
            "logreg",
            "sklearn.linear_model.LogisticRegression",
            {"max_iter": 1000},
            {"C": LOGREG_C},
            "multinomial logistic regression (L-BFGS)",
            path="warm_start",
        ),
        ZooEntry(
            "linsvm",
            "sklearn.svm.LinearSVC",
            {"max_iter": 5000},
            {"C": [0.0001, 0.001, 0.01]},
            "linear SVM (liblinear, one-vs-rest)",
        ),
        ZooEntry(
            "svm-rbf",
            "sklearn.svm.SVC",
            {"kernel": "rbf", "gamma": "scale"},
            {"C": [1.0, 10.0, 100.0]},
            "kernel SVM, RBF kernel with gamma='scale' (libsvm, one-vs-one)",
            cost_exponent=2.0,
            at_scale=ZooEntry(
                "svm-rbf",
                "classifiers.kernels.NystroemClassifier",
                description="the RBF kernel approximated by Nystroem features, then a linear classifier",
            ),
        ),
        ZooEntry(
            "sgd",
            "sklearn.linear_model.SGDClassifier",
            {"loss": "log_loss", "max_iter": 1000, "tol": 1e-3},
            {"alpha": [1e-4, 1e-3, 1e-2]},
            "logistic regression by stochastic gradient descent; learns in row blocks (partial_fit)",
        ),
        ZooEntry(
            "ridge",
            "sklearn.linear_model.RidgeClassifier",
            grid={"alpha": RIDGE_ALPHA},
            description="ridge regression on +-1 targets (one-vs-rest, closed form)",
            seeded=False,
            path="ridge",
        ),
        ZooEntry(
            "knn",
            "sklearn.neighbors.KNeighborsClassifier",
            {"metric": "cosine", "algorithm": "brute"},
            {"n_neighbors": [1, 5, 10], "weights": ["uniform", "distance"]},
            "k nearest neighbours, cosine distance",
            seeded=False,
        ),
        ZooEntry(
            "linear-head",
            "classifiers.heads.TorchHead",
            grid={"weight_decay": [1.0, 1e-2, 1e-4]},
            description="softmax layer trained with PyTorch (AdamW, early stopping)",
            held_out=True,
            refine="weight_decay",
        ),
        ZooEntry(
            "mlp-head",
            "classifiers.heads.TorchHead",
            {"hidden_units": (1024,), "dropout": 0.5, "input_dropout": 0.2, "learning_rate_schedule": "cosine",
             "label_smoothing": 0.1, "max_iter": 20},
            {"weight_decay": [1e-2]},
            "one hidden layer of 1,024 ReLU units, dropout 0.2 on the codes and 0.5 on the hidden layer, label "
            "smoothing 0.1, 20 epochs of AdamW with a cosine learning-rate schedule and early stopping (PyTorch)",
            held_out=True,
            refine="weight_decay",  # with a wider [classifiers.grid.mlp-head] weight_decay
        ),
        ZooEntry(
            "finetune",
            "classifiers.finetune.FinetuneHead",
            description="the backbone's layers after the tap (VGG16 block 5 after pool4, ResNet50 layer4 after layer3) "
                        "fine-tuned with a new softmax layer on cached maps (pooling none)",
            takes=MAPS,
            held_out=True,
        ),
    )
}


def _entry(name: str) -> ZooEntry:
    if name not in ZOO:
        close = difflib.get_close_matches(name, list(ZOO), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SettingError(f"unknown classifier {name!r}{hint}; valid: {', '.join(ZOO)}")
    return ZOO[name]


DEFAULT_MODELS = ("logreg", "ridge", "svm-rbf", "mlp-head")
"""What ``fit`` and ``benchmark`` tune when no models are named: the linear baselines, the
kernel SVM that wins on a few thousand images, and the MLP head that wins on tens of
thousands (docs/classifiers.md has the measurements)."""

SIMPLEST_FIRST = ("ridge", "logreg", "linsvm", "sgd", "linear-head", "knn", "svm-rbf", "mlp-head", "finetune")
"""The zoo from the simplest model to the most complex, the order that breaks ties between
equal selection scores (``classifiers.report.rank_rows``): linear models first (a closed
form, then convex fits), then the non-linear ones (neighbours, a kernel, a hidden layer,
fine-tuned network layers). A name not listed (a row made by another part of the
pipeline) counts as more complex than all of them."""


def simplicity(name: str) -> int:
    """The position of classifier ``name`` in ``SIMPLEST_FIRST`` (its length when absent)."""
    return SIMPLEST_FIRST.index(name) if name in SIMPLEST_FIRST else len(SIMPLEST_FIRST)


SCALE_ROWS = 20_000
"""Training rows past which an entry with an ``at_scale`` form runs as that (an exact RBF
SVM's fit grows as rows ** 1.8-2 and its prediction with its support vectors: 122 s to fit
20,000 Fashion-MNIST codes, and more to predict 10,000)."""


def entry_for(name: str, n_rows: int | None = None) -> ZooEntry:
    """Zoo entry ``name`` as it runs on ``n_rows`` training rows (its ``at_scale`` form past ``SCALE_ROWS``)."""
    entry = _entry(name)
    return entry.at_scale if entry.at_scale and n_rows and n_rows > SCALE_ROWS else entry


def make_model(
    name: str, preprocessing: list[str] = DEFAULT_PREPROCESSING, random_state: int = 0, incremental: bool = False,
    params: dict | None = None, n_rows: int | None = None, part_widths: list[tuple[str, int]] | None = None,
    fuse_width: int | None = None,
):
    """A fresh unfitted ``Pipeline(preprocessing..., classifier)`` of zoo entry ``name``.

    ``incremental=True`` builds steps that all learn in row blocks (see ``fit_in_blocks``).
    An entry that takes maps gets no preprocessing. ``params`` sets estimator parameters
    (``{"C": 1.0}``, or what a map head is built from). ``n_rows``, the training rows the
    model will see, picks the entry's form at scale (``entry_for``). ``part_widths`` (fused
    codes: each part's name and width) puts each part through the preprocessing on its
    own, reduced to its share of ``fuse_width`` columns when given (``classifiers.fusion``).
    """
    from sklearn.pipeline import Pipeline

    entry = entry_for(name, n_rows)
    if part_widths:
        from .fusion import make_part_preprocessing

        steps = [("fusion", make_part_preprocessing(list(preprocessing), part_widths, fuse_width, random_state))]
    else:
        steps = make_preprocessing(list(preprocessing), random_state, incremental) if entry.takes == CODES else []
    return Pipeline([*steps, (STEP, entry.build(random_state).set_params(**(params or {})))])


def check_grid(name: str, grid: dict) -> None:
    """Raise ``SettingError`` (a ``ValueError``) when ``grid`` names a parameter that entry
    ``name`` lacks, or gives one a value that its estimator refuses.

    The values get the check each estimator runs first in ``fit`` (``_validate_params``:
    scikit-learn's parameter constraints, the torch heads' own), here without data, so a
    bad value fails when the config is read rather than after the extraction and the
    other classifiers' fits. An entry with an ``at_scale`` form is checked as both: the
    grid must serve it at any number of rows.
    """
    entry = _entry(name)
    forms = (entry, entry.at_scale) if entry.at_scale else (entry,)
    own = [set(form.build(0).get_params(deep=False)) for form in forms]
    valid = set.intersection(*own)

    def at_scale(form: ZooEntry) -> str:
        return f" (past {SCALE_ROWS:,} training rows {name} runs as {form.estimator.rsplit('.', 1)[1]})"

    for key, values in grid.items():
        if key not in valid:
            lowered = {param.lower(): param for param in valid}  # C, not c
            close = difflib.get_close_matches(key.lower(), list(lowered), n=1)
            hint = f" (did you mean {lowered[close[0]]!r}?)" if close else ""
            if key in own[0]:  # the entry's own estimator has it, its form at scale does not
                hint = at_scale(forms[-1])
            raise SettingError(f"{name} has no parameter {key!r}{hint}; valid: {', '.join(sorted(valid))}")
        for form in forms:
            for value in values if isinstance(values, list) else [values]:
                try:
                    form.build(0).set_params(**{key: value})._validate_params()
                except (TypeError, ValueError) as error:  # a ValueError's message names the parameter already
                    message = str(error) if isinstance(error, ValueError) else f"{key} = {value!r}: {error}"
                    raise SettingError(message + (at_scale(form) if form is not entry else "")) from None


def estimator_params(params: dict) -> dict:
    """A setting keyed for the zoo pipeline (``classifier__C``, as ``param_grid`` keys it)
    by the estimator's own parameter names (``C``)."""
    return {key.removeprefix(f"{STEP}__"): value for key, value in params.items()}


def param_grid(name: str, overrides: dict | None = None) -> dict[str, list]:
    """The grid of entry ``name`` with ``overrides`` (parameter -> value or list) applied,
    keyed for the zoo pipeline (``classifier__C``)."""
    overrides = overrides or {}
    check_grid(name, overrides)
    grid = {**_entry(name).grid, **overrides}
    return {f"{STEP}__{key}": values if isinstance(values, list) else [values] for key, values in grid.items()}
