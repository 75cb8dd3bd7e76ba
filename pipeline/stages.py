"""The stages: extract -> fit -> report, each a function of the resolved config.

Stages hand over through files in the run folder, so each can run alone:

    extract  images -> feature stores in ``features.cache_dir``; ``features.json`` names them
    fit      ``features.json`` -> ``models/<backbone>/<tap>-<pooling>-<classifier>.joblib``
             (+ ``.joblib.json`` sidecars) and ``results.json`` (tuned by CV on train, test once)
    report   ``results.json`` -> ``results.csv``, ``accuracy_by_depth.png``,
             ``confusion_matrix.png``, ``report.md``,
             and the sorted table on standard output

Every output is written under a temporary name and renamed, so a killed stage never
leaves a file that looks finished. ``STAGES`` declares, for the runner, what each stage
reads (config sections, files, earlier stages) and writes; the runner decides from that
which stages are stale, and the stage functions know nothing of stamps.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torchvision.models import get_model_weights
from tqdm.auto import tqdm

from classifiers import (
    MAPS,
    ZOO,
    benchmark_model,
    best_row,
    finetune_summary,
    format_table,
    learns_in_chunks,
    load_codes,
    plot_accuracy_by_depth,
    plot_confusion_matrix,
    rank_rows,
    search_backend,
    write_csv,
    write_markdown,
)
from features import (
    MAP,
    AugmentedViews,
    FeatureStore,
    Forward,
    ImageFolder,
    ImageManifest,
    Shard,
    distributed_rank,
    extract_codes,
    forward_seconds,
    get_backbone,
    join_shard_stores,
    open_named_dataset,
    resolve_weights,
)

from .config import Config, dump_config
from .runner import Stage, file_digest, file_stat
from .runner import write_atomic as _write_atomic
from .runner import write_json as _write_json

__all__ = ["STAGES", "extract", "fit", "report"]

log = logging.getLogger(__name__)

PLOT_NAME = "accuracy_by_depth.png"
CONFUSION_NAME = "confusion_matrix.png"


class StageInputMissing(FileNotFoundError):
    """A stage needs the outputs of an earlier stage that has not run."""


def _read_json(path: Path, stage: str):
    if not path.is_file():
        raise StageInputMissing(f"{path} is missing; run the {stage} stage first (or `run` for all stages)")
    return json.loads(path.read_text())


def _run_dir(config: Config) -> Path:
    run_dir = Path(config.run.dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(dump_config(config))
    return run_dir


def device_of(config: Config) -> str:
    """``features.device``, with ``auto`` the GPU when there is one."""
    name = config.features.device
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def forward_of(config: Config, device: str | None = None) -> Forward:
    """How the backbone runs: on ``device`` (default ``device_of``), with the configured
    precision, memory format, compilation and JPEG decoding."""
    features = config.features
    return Forward(device or device_of(config), features.precision, features.channels_last, features.compile,
                   features.decode_on_device)


def open_source(config: Config):
    """The image source that ``[data]`` describes (a named dataset downloads into ``root``,
    by default ``<features.cache_dir>/datasets``)."""
    data = config.data
    splits = {"test_size": data.test_size, "val_size": data.val_size, "seed": data.seed}
    if data.dataset:
        root = data.root or Path(config.features.cache_dir) / "datasets"
        return open_named_dataset(data.dataset, root=root, **splits)
    if data.manifest:
        return ImageManifest(data.manifest, **splits)
    return ImageFolder(data.root, **splits)


def extract(config: Config, progress: bool = True) -> None:
    """CNN codes of every configured backbone, tap and pooling, computed once and cached.

    Under ``torchrun`` each rank extracts its shard of the images (``features.Shard``) and
    rank 0 joins the shards into the store once all are done (``join_shard_stores``).
    """
    run_dir = _run_dir(config)
    features = config.features
    source = open_source(config)
    log.info("extract: %s, %d images, %d classes", source.name, len(source), len(source.classes))
    if features.views:
        source = AugmentedViews(source, features.views, features.seed)
        log.info("extract: %d augmented views of each training image: %d rows", features.views, len(source))
    rank, world = distributed_rank()
    device = device_of(config)
    if world > 1:
        device = _join_process_group(device)
        log.info("extract: rank %d of %d, %d images on %s", rank, world, len(Shard(source, rank, world)), device)
    stores = {}
    for backbone in features.backbones:
        weights = resolve_weights(backbone, features.weights, seed=features.seed)
        options = dict(image_size=features.image_size, cache_dir=features.cache_dir, dtype=features.dtype,
                       fast_decode=features.fast_decode, map_dtype=features.map_dtype)
        forward = forward_of(config, device)
        done = extract_codes(
            Shard(source, rank, world) if world > 1 else source,
            weights,
            taps=features.taps_of(backbone),
            poolings=features.pooling,
            batch_size=features.batch_size,
            num_workers=features.num_workers,
            forward=forward,
            progress=progress,
            on_error=config.data.on_error,
            map_budget_gb=features.map_budget_gb,
            **options,
        )
        codes = ", ".join(f"{tap}/{pooling}" for tap, pooling in done.computed) or "nothing new"
        speed = (f" for {done.images} images in {done.seconds:.1f} s ({done.images / done.seconds:.0f} images/s)"
                 if done.images else "")
        log.info("extract: %s [%s] computed %s%s, %d cached -> %s",
                 backbone, weights.identity, codes, speed, len(done.cached), done.path)
        skipped = done.skipped
        if world > 1:
            torch.distributed.barrier()  # every rank's shard of this backbone is written
            if rank:
                continue
            done.path = join_shard_stores(source, weights, world=world, forward=forward, **options)
            with FeatureStore(done.path) as store:
                skipped = store.skipped
            log.info("extract: %s: %d shards joined -> %s", backbone, world, done.path)
        stores[backbone] = {
            "store": str(done.path),
            "weights": weights.identity,
            "pretrained": weights.is_pretrained,
            "fell_back": weights.fell_back,
            "skipped": [{"id": sample_id, "reason": reason} for sample_id, reason in skipped],
        }
    if rank == 0:
        _write_json(run_dir / "features.json", stores)


def _join_process_group(device: str) -> str:
    """Join ``torchrun``'s process group (NCCL between GPUs, gloo between CPUs); this rank's device."""
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if device == "cuda" else device


def _map_head_params(config: Config, store: dict, backbone: str, tap: str) -> dict:
    """What a map head (``finetune``) is built from: the backbone's layers after ``tap``,
    with the weights the store's codes were made with."""
    weights = config.features.weights if store["pretrained"] else "random"  # auto may have fallen back
    return {"backbone": backbone, "tap": tap, "weights": "imagenet" if weights == "auto" else weights,
            "weights_seed": config.features.seed}


def _recompute_seconds(config: Config, backbone: str, tap: str, row: dict) -> dict:
    """What the map head's training would have cost had it run the frozen layers up to ``tap``
    on every fit row in every epoch, as fine-tuning without a cache does: their forward
    time per image, measured here, x epochs x rows."""
    weights = resolve_weights(backbone, config.features.weights, seed=config.features.seed)
    per_image = forward_seconds(weights, [tap], config.features.image_size, config.features.batch_size,
                                forward_of(config))
    rows_per_epoch = row["n_train"] + row["n_val"]
    return {"frozen_ms_per_image": round(1000 * per_image, 3),
            "recompute_seconds": round(per_image * row["epochs"] * rows_per_epoch, 1)}


def _fits(models: list[str], backbone: str, tap: str, pooling: str) -> list[str]:
    """The classifiers that train on these codes: map heads on whole maps of a tap with layers
    after it to fine-tune (not VGG16's ``pool5``), the others on pooled codes."""
    entry = get_backbone(backbone)
    if pooling != MAP:
        return [name for name in models if ZOO[name].takes != MAPS]
    return [name for name in models if ZOO[name].takes == MAPS and entry.depth(tap) < entry.depth(entry.top)]


def fit(config: Config, progress: bool = True) -> None:
    """Every configured classifier, tuned by cross-validation on the training split, on every
    (backbone, tap, pooling) it takes (map heads: whole maps, pooling ``none``; the others:
    pooled codes); each best setting refitted, saved and scored once on test.

    ``results.json`` holds the rows best first and ``best_model``, the path (relative to
    the run folder) of the model that ``predict`` uses by default.
    """
    run_dir = _run_dir(config)
    stores = _read_json(run_dir / "features.json", "extract")
    settings = config.classifiers
    jobs = [
        (backbone, tap, pooling)
        for backbone in config.features.backbones
        for tap in config.features.taps_of(backbone)
        for pooling in config.features.pooling
        if _fits(settings.models, backbone, tap, pooling)
    ]
    if not jobs:
        raise ValueError(f"no classifier of classifiers.models ({', '.join(settings.models)}) takes the configured "
                         f"codes: a map head needs pooling \"{MAP}\" and a tap with layers after it (vgg16: pool4 or "
                         f"shallower; resnet50: layer3 or shallower)")
    rows = []
    bar = tqdm(total=sum(len(_fits(settings.models, *job)) for job in jobs), desc="fit", unit="model",
               disable=None if progress else True)
    with search_backend(settings.backend, settings.scheduler):  # where the searches' fits run
        for backbone, tap, pooling in jobs:
            if backbone not in stores:
                raise StageInputMissing(f"no features for backbone {backbone!r} in {run_dir / 'features.json'}; "
                                        f"run extract")
            codes = load_codes(stores[backbone]["store"], tap, pooling, settings.memory_budget_gb)
            for classifier in _fits(settings.models, backbone, tap, pooling):
                bar.set_postfix_str(f"{backbone} {tap}/{pooling} {classifier}")
                if not codes.in_memory and not learns_in_chunks(classifier):
                    log.warning("fit: %s %s/%s %s skipped: its codes are over classifiers.memory_budget_gb and it "
                                "cannot learn from row blocks (sgd, linear-head and mlp-head can)",
                                backbone, tap, pooling, classifier)
                    bar.update()
                    continue
                model_path = run_dir / "models" / backbone / f"{tap}-{pooling}-{classifier}.joblib"
                map_head = ZOO[classifier].takes == MAPS
                record = benchmark_model(codes, classifier, model_path, settings.preprocessing,
                                         settings.grid.get(classifier), settings.cv_folds, settings.n_jobs, settings.seed,
                                         _map_head_params(config, stores[backbone], backbone, tap) if map_head else None,
                                         settings.memory_budget_gb, settings.chunk_epochs)
                if map_head:
                    record.update(_recompute_seconds(config, backbone, tap, record))
                rows.append({
                    "backbone": backbone,
                    "weights": stores[backbone]["weights"],
                    "pretrained": stores[backbone]["pretrained"],
                    "tap": tap,
                    "depth": get_backbone(backbone).depth(tap),
                    "pooling": pooling,
                    **record,
                    "model": model_path.relative_to(run_dir).as_posix(),
                })
                bar.update()
    bar.close()
    if not rows:
        raise ValueError("no classifier was fitted: the codes are over classifiers.memory_budget_gb and none of "
                         "classifiers.models can learn from row blocks; add sgd, linear-head or mlp-head, or raise "
                         "the budget")
    ranked = rank_rows(rows)
    _write_json(run_dir / "results.json", {"best_model": ranked[0]["model"], "classes": codes.classes, "rows": ranked})
    best = ranked[0]
    log.info("fit: best of %d: %s %s/%s %s (cv %.1f %%)", len(rows), best["backbone"], best["tap"], best["pooling"],
             best["classifier"], 100 * best["cv_accuracy"])


def weights_banner(rows: list[dict]) -> str:
    """A warning when any result came from random weights, empty otherwise."""
    random = sorted({row["backbone"] for row in rows if not row["pretrained"]})
    if not random:
        return ""
    return (
        f"Random weights for {', '.join(random)}: these numbers are NOT transfer learning "
        f"(ImageNet weights were not used; see features.weights in the README)."
    )


def report(config: Config, progress: bool = True) -> None:
    """The ranked results table (printed and ``results.csv``), the plots and ``report.md``."""
    run_dir = _run_dir(config)
    results = _read_json(run_dir / "results.json", "fit")
    rows = results["rows"]
    banner = weights_banner(rows)
    plots = {"test accuracy by depth": PLOT_NAME, "confusion matrix of the best model": CONFUSION_NAME}
    _write_atomic(run_dir / "results.csv", lambda partial: write_csv(rows, partial))
    _write_atomic(run_dir / PLOT_NAME, lambda partial: plot_accuracy_by_depth(rows, partial, banner))
    _write_atomic(run_dir / CONFUSION_NAME,
                  lambda partial: plot_confusion_matrix(best_row(rows), results["classes"], partial, banner))
    _write_atomic(run_dir / "report.md", lambda partial: write_markdown(rows, partial, plots, banner))
    print(format_table(rows))
    summary = finetune_summary(rows)
    if summary:
        print(f"\n{summary}")
    if banner:
        print(f"\n*** {banner} ***")


def _stores(config: Config) -> list[Path]:
    """The feature stores the last extract named (none before it ran)."""
    path = Path(config.run.dir) / "features.json"
    return [Path(entry["store"]) for entry in json.loads(path.read_text()).values()] if path.is_file() else []


def _extract_inputs(config: Config) -> dict[str, str]:
    """The images (a cheap fingerprint: paths, labels, splits, sizes, times) and a weights file."""
    inputs = {"images": open_source(config).fingerprint}
    if Path(config.features.weights).is_file():  # weights may name a state-dict file
        inputs[f"weights file {Path(config.features.weights).name}"] = file_stat(config.features.weights)
    if config.features.weights == "auto":  # random weights until ImageNet's are in the hub cache
        for backbone in config.features.backbones:
            url = get_model_weights(backbone).DEFAULT.url
            cached = (Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name).is_file()
            inputs[f"ImageNet weights of {backbone}"] = "cached" if cached else "not cached"
    return inputs


def _fit_inputs(config: Config) -> dict[str, str]:
    features = Path(config.run.dir) / "features.json"
    return {"features.json": file_digest(features),
            **{f"feature file {store.name}": file_stat(store) for store in _stores(config)}}


def _report_inputs(config: Config) -> dict[str, str]:
    return {"results.json": file_digest(Path(config.run.dir) / "results.json")}


def _in_run_dir(*names: str):
    return lambda config: [Path(config.run.dir) / name for name in names]


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("extract", extract, sections=("data", "features"), inputs=_extract_inputs,
              outputs=_in_run_dir("features.json"), cache=_stores),
        Stage("fit", fit, sections=("features", "classifiers"), inputs=_fit_inputs,
              outputs=_in_run_dir("results.json", "models"), upstream=("extract",)),
        Stage("report", report, inputs=_report_inputs,
              outputs=_in_run_dir("results.csv", PLOT_NAME, CONFUSION_NAME, "report.md"), upstream=("fit",)),
    )
}
"""The stages in the order ``run`` executes them, with what each reads and writes."""
