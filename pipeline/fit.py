"""The fit stage: every configured classifier, tuned by cross-validation on the training
split, on every (backbone, tap, pooling) it takes; each best setting refitted, saved and
scored once on test.
"""

from __future__ import annotations

import logging

from tqdm.auto import tqdm

from classifiers import MAPS, ZOO, benchmark_model, learns_in_chunks, load_codes, rank_rows, search_backend
from features import MAP, forward_seconds, get_backbone, resolve_weights

from .config import Config
from .extract import forward_of
from .stages import StageInputMissing, read_json, run_folder, write_json

__all__ = ["fit"]

log = logging.getLogger(__name__)


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
    run_dir = run_folder(config)
    stores = read_json(run_dir / "features.json", "extract")
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
                                         settings.memory_budget_gb, settings.chunk_epochs, settings.tune_rows or None,
                                         settings.head_folds)
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
    write_json(run_dir / "results.json", {"best_model": ranked[0]["model"], "classes": codes.classes, "rows": ranked})
    best = ranked[0]
    log.info("fit: best of %d: %s %s/%s %s (cv %.1f %%)", len(rows), best["backbone"], best["tap"], best["pooling"],
             best["classifier"], 100 * best["cv_accuracy"])
