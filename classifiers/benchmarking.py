"""The benchmark: every classifier tuned and scored on every (backbone, tap, pooling) it takes.

``benchmark`` is the one loop behind a notebook's ``classifiers.benchmark``, the ``fit``
stage and ``benchmarks/classifiers.py``: the same settings give the same numbers in all
three. It writes nothing; ``Results.save`` (``classifiers.results``) writes what ``fit``
and ``report`` write. Each cell is fitted by ``classifiers.cells``; a map head's frozen
layers are rebuilt and timed by ``classifiers.frozen``.
"""

from __future__ import annotations

import dataclasses
import logging

from tqdm.auto import tqdm

from features import MAP, FeatureStore, get_backbone
from features.errors import SettingError

from .cells import Cell, benchmark_model, load_fused_codes
from .ensemble import stack_cells
from .frozen import map_head_settings, recompute_cost
from .fusion import FUSE_ALL, fusion_sets, joined_names
from .outofcore import learns_in_blocks
from .parallel import search_backend
from .results import Results, open_stores
from .table import rank_rows
from .tuning import Tuning, check_models
from .zoo import DEFAULT_MODELS, MAPS, ZOO

__all__ = ["benchmark"]

log = logging.getLogger(__name__)


def _takes(name: str, backbone: str, tap: str, pooling: str) -> bool:
    """Whether classifier ``name`` trains on these codes: map heads on whole maps of a tap with
    layers after it to fine-tune (not VGG16's ``pool5``), the others on pooled codes."""
    if ZOO[name].takes != MAPS:
        return pooling != MAP
    entry = get_backbone(backbone)
    return pooling == MAP and entry.depth(tap) < entry.depth(entry.top)


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
            raise SettingError(f"{store.path} has no complete codes for {', '.join('/'.join(key) for key in missing)}; "
                               f"it has {', '.join('/'.join(key) for key in available) or 'none'} (extract them first)")
        takers = [name for name in models if ZOO[name].takes != MAPS]
        for parts in fusion_sets(fuse, tables, available) if takers else []:
            jobs.append((backbone, parts, takers))
            fused.append(parts)
    for item in fuse:
        if item != FUSE_ALL and [tuple(name.split("/", 1)) for name in dict.fromkeys(item)] not in fused:
            have = sorted({"/".join(key) for store in stores.values() for key in store.available()})
            raise SettingError(f"classifiers.fuse names {list(item)}, but no store has complete codes for all of them "
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
    by_backbone = open_stores(stores)
    jobs = _jobs(by_backbone, models, codes, settings.fuse)
    singles, fused = [job for job in jobs if len(job[1]) == 1], [job for job in jobs if len(job[1]) > 1]
    cells = []
    bar = tqdm(total=sum(len(takers) for *_, takers in singles), desc="fit", unit="model",
               disable=None if progress else True)
    with bar, search_backend(backend, scheduler):  # where the searches' fits run
        for backbone, parts, takers in singles:
            cells += _fit_job(backbone, by_backbone[backbone], parts, takers, settings, bar)
        for backbone, parts, takers in fused:  # after the single tables, whose best classifiers they take
            takers = _fused_takers(cells, backbone, takers, settings.fuse_models)
            bar.total += len(takers)
            bar.refresh()
            cells += _fit_job(backbone, by_backbone[backbone], parts, takers, settings, bar)
        if not cells:
            raise SettingError("no classifier was fitted: the codes are over classifiers.memory_budget_gb and none of "
                               "classifiers.models can learn from row blocks; add sgd, linear-head or mlp-head, or raise "
                               "the budget")
        cells = _ranked(cells)
        if settings.ensemble > 1:  # its members' out-of-fold fits run where the searches' did
            stacked = stack_cells(cells, by_backbone, settings)
            cells = _ranked(cells + [stacked]) if stacked else cells
    best = cells[0]
    log.info("fit: best of %d: %s %s/%s %s (cv %.1f %%)", len(cells), best.backbone, best.tap, best.pooling,
             best.classifier, 100 * best.cv_accuracy)
    return Results(cells, next(iter(by_backbone.values())).classes, by_backbone, settings.seed)


def _fit_job(backbone: str, store: FeatureStore, parts: list, takers: list[str], settings: Tuning,
             bar) -> list[Cell]:
    """The cells of one codes dataset (a table, or fused ``parts``): each classifier in
    ``takers`` tuned, refitted and scored on it."""
    codes_of = load_fused_codes(store.path, parts, settings.memory_budget_gb)
    tap, pooling = joined_names(parts)
    cells = []
    for name in takers:
        bar.set_postfix_str(f"{backbone} {tap}/{pooling} {name}")
        if not codes_of.in_memory and (codes_of.part_widths or not learns_in_blocks(name)):
            log.warning("fit: %s %s/%s %s skipped: its codes are over classifiers.memory_budget_gb and %s",
                        backbone, tap, pooling, name,
                        "fused codes are fitted in memory only (fuse fewer tables, or set classifiers."
                        "fuse_width)" if codes_of.part_widths else
                        "it cannot learn from row blocks (sgd, linear-head and mlp-head can)")
            bar.update()
            continue
        map_head = ZOO[name].takes == MAPS
        head = map_head_settings(store, tap) if map_head else None
        row, model = benchmark_model(codes_of, name, settings, head)
        if map_head:
            row.update(recompute_cost(store, tap, row))
        row = {"backbone": backbone, "weights": store.attrs["weights"], "pretrained": _pretrained(store),
               "tap": tap, "depth": max(get_backbone(backbone).depth(part) for part, _ in parts),
               "pooling": pooling, **row, "model_bytes": None, "model": ""}
        cells.append(Cell(row, model, codes_of.spec))
        bar.update()
    return cells


def _fused_takers(cells: list[Cell], backbone: str, takers: list[str], best: int) -> list[str]:
    """The classifiers of ``takers`` that a fused cell of ``backbone`` is fitted with: those
    of its ``best`` best single-table cells by cross-validation (all of them for 0)."""
    if not best:
        return takers
    ranked = [cell.classifier for cell in _ranked([cell for cell in cells if cell.backbone == backbone])
              if cell.classifier in takers]
    chosen = list(dict.fromkeys(ranked[:best])) if ranked else takers
    if len(chosen) < len(takers):
        log.info("fit: %s fused cells with %s (the classifiers of its %d best single-table cells, "
                 "classifiers.fuse_models), not %s", backbone, ", ".join(chosen), best,
                 ", ".join(n for n in takers if n not in chosen))
    return chosen


def _ranked(cells: list[Cell]) -> list[Cell]:
    """The cells best first, their rows marked (``rank_rows``)."""
    ranked = rank_rows([{**cell.row, "_cell": index} for index, cell in enumerate(cells)])
    return [dataclasses.replace(cells[row.pop("_cell")], row=row) for row in ranked]


def _pretrained(store: FeatureStore) -> bool:
    return bool(store.attrs.get("weights_url") or store.attrs.get("weights_file"))
