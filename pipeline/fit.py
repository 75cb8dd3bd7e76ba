"""The fit stage: every configured classifier, tuned by cross-validation on the training
split, on every (backbone, tap, pooling) it takes; each best setting refitted, saved and
scored once on test (``classifiers.benchmark``, the loop a notebook calls).
"""

from __future__ import annotations

from classifiers import benchmark
from features import FeatureStore

from .config import Config
from .runfolder import StageInputMissing, read_json, run_folder

__all__ = ["fit"]


def fit(config: Config, progress: bool = True) -> None:
    """Every configured classifier on the codes that extract made (map heads: whole maps,
    pooling ``none``; the others: pooled codes), as ``classifiers.benchmark``; the models and
    ``results.json`` (rows best first, ``best_model``: the model ``predict`` uses by default)
    written into the run folder."""
    run_dir = run_folder(config)
    stores = read_json(run_dir / "features.json", "extract")
    for backbone in config.features.backbones:
        if backbone not in stores:
            raise StageInputMissing(f"no features for backbone {backbone!r} in {run_dir / 'features.json'}; run extract")
    codes = {backbone: config.features.codes_of(backbone) for backbone in config.features.backbones}
    settings = config.classifiers
    opened = [FeatureStore(stores[backbone]["store"]) for backbone in config.features.backbones]
    try:
        results = benchmark(opened, settings.models, codes, settings.backend, settings.scheduler, progress,
                            tuning=settings.tuning())
        results.save(run_dir, report=False)
    finally:
        for store in opened:
            store.close()
