"""The stages: extract -> fit -> report, each a function of the resolved config.

Stages hand over through files in the run folder, so each can run alone:

    extract  images -> feature stores in ``features.cache_dir``; ``features.json`` names them
    fit      ``features.json`` -> ``models/<backbone>/<tap>-<pooling>-<classifier>.joblib``
             and ``results.json`` (test accuracy measured once per model)
    report   ``results.json`` -> ``results.csv``, ``accuracy_by_depth.png``, ``report.md``,
             and the sorted table on standard output

Every output is written under a temporary name and renamed, so a killed stage never
leaves a file that looks finished.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import joblib
import torch
from tqdm.auto import tqdm

from classifiers import fit_and_score, format_table, plot_accuracy_by_depth, train_test_codes, write_csv, write_markdown
from features import FeatureStore, ImageFolder, extract_codes, get_backbone, open_named_dataset, resolve_weights

from .config import Config, dump_config

__all__ = ["STAGES", "extract", "fit", "report"]

log = logging.getLogger(__name__)

PLOT_NAME = "accuracy_by_depth.png"


class StageInputMissing(FileNotFoundError):
    """A stage needs the outputs of an earlier stage that has not run."""


def _write_atomic(path: Path, write) -> None:
    """Call ``write(temporary_path)``, then rename the result to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def _write_json(path: Path, value) -> None:
    _write_atomic(path, lambda partial: partial.write_text(json.dumps(value, indent=2) + "\n"))


def _read_json(path: Path, stage: str):
    if not path.is_file():
        raise StageInputMissing(f"{path} is missing; run the {stage} stage first (or `run` for all stages)")
    return json.loads(path.read_text())


def _run_dir(config: Config) -> Path:
    run_dir = Path(config.run.dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(dump_config(config))
    return run_dir


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def open_source(config: Config):
    """The image source that ``[data]`` describes."""
    data = config.data
    if data.dataset:
        return open_named_dataset(data.dataset, test_size=data.test_size, seed=data.seed)
    return ImageFolder(data.root, test_size=data.test_size, seed=data.seed)


def extract(config: Config, progress: bool = True) -> None:
    """CNN codes of every configured backbone, tap and pooling, computed once and cached."""
    run_dir = _run_dir(config)
    features = config.features
    source = open_source(config)
    log.info("extract: %s, %d images, %d classes", source.name, len(source), len(source.classes))
    stores = {}
    for backbone in features.backbones:
        weights = resolve_weights(backbone, features.weights, seed=features.seed)
        done = extract_codes(
            source,
            weights,
            taps=features.taps_of(backbone),
            poolings=features.pooling,
            image_size=features.image_size,
            cache_dir=features.cache_dir,
            batch_size=features.batch_size,
            num_workers=features.num_workers,
            device=_device(features.device),
            progress=progress,
        )
        codes = ", ".join(f"{tap}/{pooling}" for tap, pooling in done.computed) or "nothing new"
        speed = f" in {done.seconds:.1f} s ({done.images / done.seconds:.0f} images/s)" if done.computed else ""
        log.info("extract: %s [%s] computed %s%s, %d cached -> %s",
                 backbone, weights.identity, codes, speed, len(done.cached), done.path)
        stores[backbone] = {
            "store": str(done.path),
            "weights": weights.identity,
            "pretrained": weights.is_pretrained,
            "fell_back": weights.fell_back,
        }
    _write_json(run_dir / "features.json", stores)


def fit(config: Config, progress: bool = True) -> None:
    """Every configured classifier on every (backbone, tap, pooling), scored once on test."""
    run_dir = _run_dir(config)
    stores = _read_json(run_dir / "features.json", "extract")
    jobs = [
        (backbone, tap, pooling)
        for backbone in config.features.backbones
        for tap in config.features.taps_of(backbone)
        for pooling in config.features.pooling
    ]
    rows = []
    bar = tqdm(total=len(jobs) * len(config.classifiers.models), desc="fit", unit="model",
               disable=None if progress else True)
    for backbone, tap, pooling in jobs:
        if backbone not in stores:
            raise StageInputMissing(f"no features for backbone {backbone!r} in {run_dir / 'features.json'}; run extract")
        with FeatureStore(stores[backbone]["store"]) as store:
            codes = train_test_codes(store, tap, pooling)
        for classifier in config.classifiers.models:
            estimator, record = fit_and_score(*codes, classifier, random_state=config.classifiers.seed)
            model_path = run_dir / "models" / backbone / f"{tap}-{pooling}-{classifier}.joblib"
            _write_atomic(model_path, lambda partial: joblib.dump(estimator, partial))
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
    _write_json(run_dir / "results.json", rows)
    log.info("fit: %d models -> %s", len(rows), run_dir / "models")


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
    """The results table (printed and ``results.csv``), the depth plot and ``report.md``."""
    run_dir = _run_dir(config)
    rows = _read_json(run_dir / "results.json", "fit")
    banner = weights_banner(rows)
    _write_atomic(run_dir / "results.csv", lambda partial: write_csv(rows, partial))
    _write_atomic(run_dir / PLOT_NAME, lambda partial: plot_accuracy_by_depth(rows, partial, banner))
    _write_atomic(run_dir / "report.md", lambda partial: write_markdown(rows, partial, PLOT_NAME, banner))
    print(format_table(rows))
    if banner:
        print(f"\n*** {banner} ***")
    log.info("report: %s, %s, %s", run_dir / "results.csv", run_dir / "report.md", run_dir / PLOT_NAME)


STAGES = {"extract": extract, "fit": fit, "report": report}
"""The stages in the order ``run`` executes them."""
