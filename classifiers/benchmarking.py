"""The benchmark: every classifier tuned and scored on every (backbone, tap, pooling) it takes.

``benchmark`` is the one loop behind a notebook's ``classifiers.benchmark``, the ``fit``
stage and ``benchmarks/classifiers.py``: the same settings give the same numbers in all
three. It writes nothing; ``Results.save`` writes what ``fit`` and ``report`` write.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from features import MAP, FeatureStore, Recipe, forward_seconds, get_backbone, resolve_weights, spec_of_store
from features.errors import SettingError
from features.files import write_json

from .cells import benchmark_model, load_fused_codes
from .fusion import FUSE_ALL, fusion_sets, joined_names, parts_of
from .parallel import search_backend
from .metrics import METRICS
from .outofcore import learns_in_chunks
from .persistence import load_model, save_model
from .report import COLUMNS, format_table, plot_accuracy_by_depth, rank_rows
from .tuning import Tuning, check_models
from .zoo import DEFAULT_MODELS, MAPS, ZOO

__all__ = ["Cell", "Results", "benchmark"]

log = logging.getLogger(__name__)


@dataclass
class Cell:
    """One tuned classifier on one (backbone, tap, pooling): its results row and fitted model."""

    row: dict
    model: object
    spec: dict

    backbone = property(lambda self: self.row["backbone"])
    tap = property(lambda self: self.row["tap"])
    pooling = property(lambda self: self.row["pooling"])
    classifier = property(lambda self: self.row["classifier"])
    test_accuracy = property(lambda self: self.row["test_accuracy"], doc="On the test split, 0 to 1.")
    cv_accuracy = property(lambda self: self.row["cv_accuracy"], doc="What chose it: on the training split.")

    def __repr__(self) -> str:
        return (f"Cell({self.backbone} {self.tap}/{self.pooling} {self.classifier}: "
                f"test accuracy {self.test_accuracy:.3f}, cv {self.cv_accuracy:.3f})")


@dataclass
class Results:
    """What ``benchmark`` found: the cells best first (by cross-validation accuracy, as the
    report ranks them), the class names and where the codes came from."""

    cells: list[Cell]
    classes: list[str]
    stores: dict[str, FeatureStore]
    seed: int = 0
    """The searches' seed (``Tuning.seed``); the report's suspect-label folds use it too."""

    @property
    def best(self) -> Cell:
        return self.cells[0]

    def __repr__(self) -> str:
        """The ranked table, as ``report`` prints it (a notebook shows it for ``results``)."""
        return f"Results of {len(self.cells)} classifiers, best first:\n{format_table(self.rows)}"

    @property
    def rows(self) -> list[dict]:
        """One dict per cell, best first: the columns of ``results.csv`` (and the confusion matrix)."""
        return [cell.row for cell in self.cells]

    def to_pandas(self):
        """The rows as a pandas DataFrame (pandas is not a dependency: install it to use this)."""
        try:
            import pandas
        except ImportError as error:
            raise ImportError("results.to_pandas() needs pandas: pip install pandas; results.rows has the same "
                              "data as a list of dicts") from error
        return pandas.DataFrame(self.rows, columns=[column for column in COLUMNS if column != "model" or
                                                    any(row["model"] for row in self.rows)])

    def codes(self, cell: Cell, split: str | None = "test"):
        """``(X, y)`` of one split (None: every row) as ``cell``'s model takes them: its
        table's codes, or its parts' side by side (a fused cell, an ensemble)."""
        if cell.backbone not in self.stores:
            raise ValueError(f"these results hold no {cell.backbone} store: Results.load(run_dir, stores=[...])")
        read = [self.stores[cell.backbone].codes(*part, split) for part in parts_of(cell.spec)]
        return (read[0][0] if len(read) == 1 else np.hstack([X for X, _ in read])), read[0][1]

    def plot(self):
        """Test accuracy by tap depth, one panel per backbone: a matplotlib Figure."""
        return plot_accuracy_by_depth(self.rows)

    @classmethod
    def load(cls, run_dir, stores=()) -> Results:
        """The results that ``save`` (or the ``fit`` stage) wrote into ``run_dir``, each model
        loaded and checked against its sidecar (``load_model``); ``stores`` are the feature
        stores they were fitted on (for ``save``'s report)."""
        run_dir = Path(run_dir)
        saved = json.loads((run_dir / "results.json").read_text())
        cells = []
        for row in saved["rows"]:
            model, sidecar = load_model(run_dir / row["model"])
            cells.append(Cell(row, model, {key: value for key, value in sidecar["spec"].items() if key != "n_features"}))
        return cls(cells, saved["classes"], _by_backbone([_open(store) for store in stores]), saved.get("seed", 0))

    def save(self, run_dir, report: bool = True) -> Path:
        """Write what the ``fit`` and ``report`` stages write into ``run_dir``: each model as
        ``models/<backbone>/<tap>-<pooling>-<classifier>.joblib`` with its sidecar,
        ``results.json`` and, with ``report``, results.csv, the plots, report.md and
        report.html. Returns the path of ``results.json``."""
        run_dir = Path(run_dir)
        for cell in self.cells:
            name = f"{cell.tap}-{cell.pooling}-{cell.classifier}.joblib"
            path = run_dir / "models" / cell.backbone / name
            path.parent.mkdir(parents=True, exist_ok=True)
            save_model(cell.model, path, cell.spec, {key: cell.row.get(key) for key in ("cv_accuracy", *METRICS)},
                       classifier=cell.classifier, params=cell.row["params"],
                       preprocessing=[step for step, _ in cell.model.steps[:-1]], classes=self.classes)
            cell.row.update(model=path.relative_to(run_dir).as_posix(), model_bytes=path.stat().st_size)
        results = {"best_model": self.best.row["model"], "classes": self.classes, "seed": self.seed, "rows": self.rows}
        target = run_dir / "results.json"
        write_json(target, results)
        if report:
            from .review import write_report

            best_store = self.stores[self.best.backbone]
            write_report(run_dir, results, best_store.path, best_store.source)
        return target


def _open(store) -> FeatureStore:
    return store if isinstance(store, FeatureStore) else FeatureStore(store)


def _takes(name: str, backbone: str, tap: str, pooling: str) -> bool:
    """Whether classifier ``name`` trains on these codes: map heads on whole maps of a tap with
    layers after it to fine-tune (not VGG16's ``pool5``), the others on pooled codes."""
    if ZOO[name].takes != MAPS:
        return pooling != MAP
    entry = get_backbone(backbone)
    return pooling == MAP and entry.depth(tap) < entry.depth(entry.top)


def _weights_setting(attrs: dict) -> tuple[str, int]:
    """The ``weights`` value and seed that remake a store's weights (a map head rebuilds the
    layers after its tap with them)."""
    if attrs.get("weights_file"):
        return attrs["weights_file"], 0
    random = re.fullmatch(r"random\(seed=(\d+)\)", attrs["weights"])
    if random:
        return "random", int(random.group(1))
    return attrs["weights"].rpartition(".")[2], 0  # VGG16_Weights.IMAGENET1K_V1 -> IMAGENET1K_V1


def _map_head(store: FeatureStore, tap: str) -> dict:
    """What a map head (``finetune``) is built from: the backbone's layers after ``tap``,
    with the weights the store's codes were made with."""
    weights, seed = _weights_setting(store.attrs)
    return {"backbone": store.attrs["backbone"], "tap": tap, "weights": weights, "weights_seed": seed}


def _recompute_seconds(store: FeatureStore, tap: str, row: dict) -> dict:
    """What the map head's training would have cost had it run the frozen layers up to ``tap``
    on every fit row in every epoch, as fine-tuning without a cache does: their forward
    time per image, measured here, x epochs x rows."""
    head = _map_head(store, tap)
    spec = spec_of_store(store.attrs, tap, MAP)
    recipe = Recipe.from_spec(spec, resolve_weights(head["backbone"], head["weights"], head["weights_seed"]))
    per_image = forward_seconds(recipe, [tap])
    rows_per_epoch = row["n_train"] + row["n_val"]
    return {"frozen_ms_per_image": round(1000 * per_image, 3),
            "recompute_seconds": round(per_image * row["epochs"] * rows_per_epoch, 1)}


def _jobs(stores: dict[str, FeatureStore], models: list[str], codes, fuse) -> list[tuple[str, list, list[str]]]:
    """``(backbone, parts, classifiers)`` of every complete codes dataset asked for (``codes``:
    ``"tap/pooling"`` names, or such lists by backbone; all by default) that some classifier
    takes, each with ``parts`` = ``[(tap, pooling)]``, then the fused cells of ``fuse``
    (``classifiers.fusion``) with their parts."""
    jobs, fused = [], []
    for backbone, store in stores.items():
        names = codes.get(backbone) if isinstance(codes, dict) else codes
        wanted = None if names is None else list(dict.fromkeys(tuple(name.split("/", 1)) for name in names))
        available = store.available()
        tables = available if wanted is None else [key for key in wanted if key in available]
        for tap, pooling in tables:
            takers = [name for name in models if _takes(name, backbone, tap, pooling)]
            if takers:
                jobs.append((backbone, [(tap, pooling)], takers))
        missing = [] if wanted is None else [key for key in wanted if key not in available]
        if missing:
            raise ValueError(f"{store.path} has no complete codes for {', '.join('/'.join(key) for key in missing)}; "
                             f"it has {', '.join('/'.join(key) for key in available) or 'none'} (extract them first)")
        takers = [name for name in models if ZOO[name].takes != MAPS]
        for parts in fusion_sets(fuse, tables, available) if takers else []:
            jobs.append((backbone, parts, takers))
            fused.append(parts)
    for item in fuse:
        if item != FUSE_ALL and [tuple(name.split("/", 1)) for name in dict.fromkeys(item)] not in fused:
            have = sorted({"/".join(key) for store in stores.values() for key in store.available()})
            raise ValueError(f"classifiers.fuse names {list(item)}, but no store has complete codes for all of them "
                             f"(they have {', '.join(have) or 'none'}); extract them first, or fuse others")
    if not jobs:
        raise SettingError(f"no classifier of {', '.join(models)} takes the codes given: a map head needs pooling "
                           f"\"{MAP}\" and a tap with layers after it (vgg16: pool4 or shallower; resnet50: layer3 or "
                           f"shallower)")
    return jobs


def benchmark(stores, models: list[str] | None = None, codes=None, backend: str = "loky", scheduler: str = "",
              progress: bool = True, *, tuning: Tuning | None = None, **settings) -> Results:
    """Tune every classifier in ``models`` on every codes dataset of ``stores`` it takes, refit
    the best setting, and score it once on the test split.

    Parameters
    ----------
    stores : FeatureStore, path, or a list of them
        One store per backbone (``features.extract`` returns one).
    models : list of str, optional
        Zoo names (``classifiers.ZOO``); by default ``classifiers.DEFAULT_MODELS``, those of
        the config file (``logreg``, ``ridge``, ``svm-rbf``, ``mlp-head``).
    codes : list of str, or dict of backbone to list of str, optional
        ``"tap/pooling"`` names to benchmark; by default every complete one in each store.
    backend, scheduler : str
        Where the searches' fits run (``classifiers.backend``: ``loky``, ``threading``,
        ``dask``, ``ray``; the Dask scheduler's address).
    progress : bool
        A progress bar (tqdm's auto mode: a terminal or a notebook).
    tuning : Tuning, optional
        The other settings of ``[classifiers]``; or, instead, ``**settings``:
    **settings
        They by name (``Tuning``'s fields): ``preprocessing``, ``grid``, ``cv_folds``,
        ``tune_rows``, ``head_folds``, ``memory_budget_gb``, ``chunk_epochs``, ``seed``, ``n_jobs``.

    Returns
    -------
    Results
        Best first. Nothing is written: ``Results.save(run_dir)`` writes the models and the report.
    """
    valid = [field.name for field in dataclasses.fields(Tuning)]
    unknown = sorted(set(settings) - set(valid))
    if unknown or tuning is not None and settings:
        raise TypeError(f"benchmark() got unknown settings {', '.join(unknown)}; valid: {', '.join(valid)}" if unknown
                        else "benchmark() takes tuning= or its settings by name, not both")
    settings = tuning or Tuning(**settings)
    models = list(models or DEFAULT_MODELS)
    check_models(models)
    opened = [_open(store) for store in (stores if isinstance(stores, (list, tuple)) else [stores])]
    by_backbone = _by_backbone(opened)
    jobs = _jobs(by_backbone, models, codes, settings.fuse)
    cells = []
    bar = tqdm(total=sum(len(takers) for *_, takers in jobs), desc="fit", unit="model",
               disable=None if progress else True)
    with bar, search_backend(backend, scheduler):  # where the searches' fits run
        for backbone, parts, takers in jobs:
            store = by_backbone[backbone]
            codes_of = load_fused_codes(store.path, parts, settings.memory_budget_gb)
            tap, pooling = joined_names(parts)
            for name in takers:
                bar.set_postfix_str(f"{backbone} {tap}/{pooling} {name}")
                if not codes_of.in_memory and (codes_of.blocks or not learns_in_chunks(name)):
                    log.warning("fit: %s %s/%s %s skipped: its codes are over classifiers.memory_budget_gb and %s",
                                backbone, tap, pooling, name,
                                "fused codes are fitted in memory only (fuse fewer tables, or set classifiers."
                                "fuse_width)" if codes_of.blocks else
                                "it cannot learn from row blocks (sgd, linear-head and mlp-head can)")
                    bar.update()
                    continue
                map_head = ZOO[name].takes == MAPS
                row, model = benchmark_model(codes_of, name, settings, _map_head(store, tap) if map_head else None)
                if map_head:
                    row.update(_recompute_seconds(store, tap, row))
                row = {"backbone": backbone, "weights": store.attrs["weights"], "pretrained": _pretrained(store),
                       "tap": tap, "depth": max(get_backbone(backbone).depth(part) for part, _ in parts),
                       "pooling": pooling, **row, "model_bytes": None, "model": ""}
                cells.append(Cell(row, model, codes_of.spec))
                bar.update()
    if not cells:
        raise SettingError("no classifier was fitted: the codes are over classifiers.memory_budget_gb and none of "
                           "classifiers.models can learn from row blocks; add sgd, linear-head or mlp-head, or raise the budget")
    cells = _ranked(cells)
    if settings.ensemble > 1:
        from .ensemble import stack_cells

        stacked = stack_cells(cells, by_backbone, settings)
        cells = _ranked(cells + [stacked]) if stacked else cells
    best = cells[0]
    log.info("fit: best of %d: %s %s/%s %s (cv %.1f %%)", len(cells), best.backbone, best.tap, best.pooling,
             best.classifier, 100 * best.cv_accuracy)
    return Results(cells, codes_of.classes, by_backbone, settings.seed)


def _ranked(cells: list[Cell]) -> list[Cell]:
    """The cells best first, their rows marked (``rank_rows``)."""
    ranked = rank_rows([{**cell.row, "_cell": index} for index, cell in enumerate(cells)])
    return [dataclasses.replace(cells[row.pop("_cell")], row=row) for row in ranked]


def _by_backbone(stores: list[FeatureStore]) -> dict[str, FeatureStore]:
    """The stores by backbone; results rows are named by backbone, so one store each."""
    by_backbone = {}
    for store in stores:
        backbone = store.attrs["backbone"]
        if backbone in by_backbone:
            raise ValueError(f"{by_backbone[backbone].path} and {store.path} both hold {backbone} codes; benchmark "
                             f"them one at a time (results are named by backbone)")
        by_backbone[backbone] = store
    return by_backbone


def _pretrained(store: FeatureStore) -> bool:
    return bool(store.attrs.get("weights_url") or store.attrs.get("weights_file"))
