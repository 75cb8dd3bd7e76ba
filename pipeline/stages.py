"""The stages and what each reads and writes: extract -> fit -> report, and predict.

    extract  images -> feature stores in ``features.cache_dir``; ``features.json`` names them
    fit      ``features.json`` -> ``models/<backbone>/<tap>-<pooling>-<classifier>.joblib``
             (+ ``.joblib.json`` sidecars) and ``results.json`` (tuned by CV on train, test once)
    report   ``results.json`` (+ the best rows' codes and images) -> ``results.csv``,
             ``accuracy_by_depth.png``, ``confusion_matrix.png``, ``report.md``, ``report.html``,
             ``suspect_labels.csv``, ``duplicates.csv``, ``outliers.csv``, ``learning_curve.csv`` and
             ``.png``, and the sorted table on
             standard output
    predict  new images + a fitted model -> ``predictions.csv`` and a short table

Stages hand over through files in the run folder, so each can run alone, and every output
is written under a temporary name and renamed, so a killed stage never leaves a file that
looks finished. ``STAGES`` declares, for the runner, what each stage reads (config
sections, files, earlier stages) and writes; the runner decides from that which stages
are stale, and the stage functions know nothing of stamps.

This module is what ``status`` and a run with nothing to do load: it imports neither
torch nor scikit-learn. The work itself (``pipeline.extract``, ``pipeline.fit``,
``pipeline.report``, ``pipeline.predict``) is imported when a stage runs; what those
modules share (the run folder, reading an earlier stage's output) is ``pipeline.runfolder``'s,
so that none of them imports this module.
"""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path

import classifiers
from features import ImageFiles, codes_fingerprint, dataset_fingerprint, dataset_root, open_source
from features.errors import MissingFileError
from features.files import MISSING, file_digest, file_stat

from .config import Config
from .runfolder import chosen_model, predictions_path
from .runner import Stage, output_fingerprint

__all__ = ["STAGES", "predict_stage"]


def _extracted(config: Config) -> dict:
    """What the last extract wrote, by backbone (``features.json``; empty before it ran)."""
    path = Path(config.run.dir) / "features.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _stores(config: Config) -> list[Path]:
    return [Path(entry["store"]) for entry in _extracted(config).values()]


def _codes(config: Config, extracted: dict | None = None) -> dict[tuple[str, str, str], Path]:
    """The store of every (backbone, tap, pooling) that extract wrote (``extracted``, by
    default read from ``features.json``) and fit reads."""
    return {(backbone, *codes.split("/", 1)): Path(entry["store"])
            for backbone, entry in (_extracted(config) if extracted is None else extracted).items()
            for codes in entry.get("codes") or config.features.codes_of(backbone)}


def _extract_shared(config: Config) -> dict[Path, str]:
    """Extract's share of the caches: each codes dataset it wrote, by ``<store>/features/<tap>/<pooling>``,
    and the ImageNet checkpoints that ``auto`` weights fell back from (in torch's hub cache):
    once one is there, the codes made with random weights instead are out of date."""
    extracted = _extracted(config)
    written = {store / "features" / tap / pooling: codes_fingerprint(store, tap, pooling)
               for (_, tap, pooling), store in _codes(config, extracted).items()}
    awaited = [Path(entry["imagenet_checkpoint"]) for entry in extracted.values() if "imagenet_checkpoint" in entry]
    return {**written, **{path: file_stat(path) for path in awaited}}


def _extract_inputs(config: Config) -> dict[str, str]:
    """The images (a cheap fingerprint: paths, labels, split rule, sizes, times) and a weights file."""
    data = config.data
    if data.dataset:
        images = dataset_fingerprint(data.dataset, dataset_root(config.features.cache_dir, data.root))
    else:
        images = open_source(**config.source()).fingerprint
    inputs = {"images": images}
    if Path(config.features.weights).is_file():  # weights may name a state-dict file
        inputs[f"weights file {Path(config.features.weights).name}"] = file_stat(config.features.weights)
    return inputs


def _fit_inputs(config: Config) -> dict[str, str]:
    """``features.json`` and the codes fit reads (not the store files: other runs extend them)."""
    return {"features.json": file_digest(Path(config.run.dir) / "features.json"),
            **{f"codes {backbone} {tap}/{pooling}": codes_fingerprint(store, tap, pooling)
               for (backbone, tap, pooling), store in _codes(config).items()}}


def _report_inputs(config: Config) -> dict[str, str]:
    """``results.json`` and the codes that the report's review of the best model and its
    learning curves read: each table of the best row and of ``classifiers.curve_rows``
    (their model files are outputs of fit already)."""
    results = Path(config.run.dir) / "results.json"
    inputs = {"results.json": file_digest(results)}
    if inputs["results.json"] == MISSING:
        return inputs
    rows = json.loads(results.read_text())["rows"]
    for row in [classifiers.best_row(rows), *classifiers.curve_rows(rows)]:
        backbone = row["backbone"]
        store = _extracted(config).get(backbone, {}).get("store")
        for tap, pooling in classifiers.parts_of(row):
            inputs[f"codes {backbone} {tap}/{pooling}"] = codes_fingerprint(store, tap, pooling) if store else MISSING
    return inputs


def _in_run_dir(*names: str):
    return lambda config: [Path(config.run.dir) / name for name in names]


def _work(module: str):
    """The stage function named like ``module`` (``pipeline.fit``: ``fit``), imported when it runs."""

    def run(config: Config, progress: bool) -> None:
        getattr(import_module(module), module.rpartition(".")[2])(config, progress)

    return run


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("extract", _work("pipeline.extract"), sections=("data", "features"), inputs=_extract_inputs,
              outputs=_in_run_dir("features.json"), cache=_stores, shared=_extract_shared),
        Stage("fit", _work("pipeline.fit"), sections=("features", "classifiers"), inputs=_fit_inputs,
              outputs=_in_run_dir("results.json", "models"), upstream=("extract",)),
        Stage("report", _work("pipeline.report"), inputs=_report_inputs,
              outputs=_in_run_dir(*classifiers.REPORT_FILES), upstream=("fit",)),
    )
}
"""The stages in the order ``run`` executes them, with what each reads and writes."""


def predict_stage(images: list[str], model: str | None = None, out: str | None = None, top_k: int = 5) -> Stage:
    """``predict`` as a runner stage: it reruns only when the images, the model it uses (its
    file and sidecar), the weights setting or the options change, and with the run's best
    model it first brings ``fit`` (and so ``extract``) up to date."""

    def inputs(config: Config) -> dict[str, str]:
        found = {"images": ImageFiles(images).fingerprint, "options": f"top_k={top_k}, out={out}"}
        if model and not Path(model).is_file():
            raise MissingFileError(f"model file {model} does not exist; name a .joblib file under models/ of a run")
        if not model:  # the best model is known once fit ran; results.json changes whenever it does
            found["results.json"] = file_digest(Path(config.run.dir) / "results.json")
            if found["results.json"] == "missing":
                return found
        used = chosen_model(config, model)
        found[f"model {used.name}"] = output_fingerprint(used)
        found[f"model {used.name}.json"] = file_digest(classifiers.sidecar_path(used))
        return found

    def run(config: Config, progress: bool) -> None:
        import_module("pipeline.predict").predict(config, images, model, out, top_k, progress)

    return Stage("predict", run, sections=("features",), inputs=inputs,
                 outputs=lambda config: [predictions_path(config, out)], upstream=() if model else ("fit",),
                 records_config=False)
