"""The make-style runner: stamps, staleness and its reasons, --force, --dry-run, status,
clean, the log file and exit codes; through the command line on tiny image folders, and
on toy stages for the rules themselves."""

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import get_model_weights

from features.files import file_digest
from pipeline.cli import main
from pipeline.config import Config, RunSection, load_config
from pipeline.runner import Stage, execute, plan, stamp_path
from pipeline.stages import STAGES

MODELS = ("--set", 'classifiers.models=["linsvm"]')
FAIL_ON_BAD_IMAGES = ("--set", "data.on_error=fail")


@pytest.fixture
def config(image_folder, write_config):
    """The small shared config with one quick classifier: these tests are about stages, not models."""
    path = write_config(f'root = "{image_folder}"')
    path.write_text(path.read_text().replace(
        'models = ["logreg", "linsvm"]', 'models = ["logreg"]\ncv_folds = 2\nn_jobs = 1'
    ))
    return path


def _forbid_models(monkeypatch):
    """Building any torch module (a CNN) from here on fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a torch module was built")

    monkeypatch.setattr(torch.nn.Module, "__init__", refuse)


def _forbid_stages(monkeypatch):
    def refuse(config, progress):
        raise AssertionError("a stage ran")

    for name, stage in STAGES.items():
        monkeypatch.setitem(STAGES, name, dataclasses.replace(stage, run=refuse))


def _status(cli, config, *args):
    """status's lines; its exit code says whether all are up to date (0) or something would run (1)."""
    code, out, _ = cli("status", "-c", config, *args)
    lines = out.splitlines()
    assert code == (0 if all(": up to date" in line for line in lines) else 1)
    return lines


def test_second_run_does_no_work_and_force_reruns_only_the_stage_named(cli, config, run_dir, monkeypatch):
    assert cli("run", "-c", config)[0] == 0
    stamp = json.loads((run_dir / ".stamps" / "extract.json").read_text())
    assert set(stamp["inputs"]) == {"package version", "[data]", "[features]", "images"}

    _forbid_models(monkeypatch)
    with monkeypatch.context() as patched:
        _forbid_stages(patched)
        assert cli("run", "-c", config) == (0, "", "up to date: extract, fit, report; nothing to do\n")
    assert [line.split(" (")[0] for line in _status(cli, config)] == [
        "extract: up to date", "fit: up to date", "report: up to date"
    ]

    code, out, err = cli("fit", "-c", config, "--force")
    assert code == 0, err
    assert err.splitlines()[0].startswith("extract: up to date")
    assert "fit: forced; running" in err and "report" not in err and not out
    assert _status(cli, config)[2] == "report: stale (results.json changed, fit ran since)"


def test_a_classifier_setting_makes_fit_and_report_stale_not_extract(cli, config, run_dir, monkeypatch):
    assert cli("run", "-c", config)[0] == 0
    results = (run_dir / "results.json").read_bytes()

    status = _status(cli, config, *MODELS)
    assert status[0].startswith("extract: up to date (ran ")
    assert status[1:] == ["fit: stale ([classifiers] changed)", "report: stale (fit will run)"]

    code, out, err = cli("run", "-c", config, *MODELS, "--dry-run")
    assert code == 0 and not err
    assert out.splitlines()[1:] == ["would run fit: stale ([classifiers] changed)",
                                    "would run report: stale (fit will run)"]
    assert (run_dir / "results.json").read_bytes() == results  # a dry run changes nothing

    _forbid_models(monkeypatch)
    code, out, err = cli("run", "-c", config, *MODELS)
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0].startswith("extract: up to date")
    assert "fit: stale ([classifiers] changed); running" in lines
    assert any(line.startswith("fit: done in ") and "results.json" in line for line in lines)
    assert any(line.startswith("report: done in ") and "report.md" in line for line in lines)
    with open(run_dir / "results.csv") as file:
        assert {row["classifier"] for row in csv.DictReader(file)} == {"linsvm"}


def test_a_changed_image_makes_extract_and_everything_after_it_stale(cli, config, image_folder, run_dir):
    assert cli("run", "-c", config)[0] == 0
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(image_folder / "dog" / "dog5.png")
    assert _status(cli, config) == [
        "extract: stale (images changed)", "fit: stale (extract will run)", "report: stale (fit will run)"
    ]


def test_a_weights_file_is_an_input_of_extract(config, tmp_path):
    loaded = load_config(config)
    weights = tmp_path / "finetuned.pth"
    weights.write_bytes(b"state dict")
    loaded.features.weights = str(weights)
    before = STAGES["extract"].fingerprints(loaded)
    weights.write_bytes(b"another state dict")
    after = STAGES["extract"].fingerprints(loaded)
    assert before.keys() == after.keys()
    assert [name for name in before if before[name] != after[name]] == ["weights file finetuned.pth"]


def test_auto_weights_make_extract_stale_once_imagenet_weights_are_cached(cli, config, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache, and no internet here
    assert cli("extract", "-c", config, "--set", "features.weights=auto")[0] == 0
    assert _status(cli, config, "--set", "features.weights=auto")[0].startswith("extract: up to date")
    checkpoint = tmp_path / "torch" / "hub" / "checkpoints" / get_model_weights("resnet50").DEFAULT.url.rsplit("/")[-1]
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"downloaded")
    assert _status(cli, config, "--set", "features.weights=auto")[0] == f"extract: stale ({checkpoint} was added)"


def test_clean_removes_a_stage_and_keeps_the_feature_cache_unless_asked(cli, config, run_dir, tmp_path, image_folder):
    assert cli("run", "-c", config)[0] == 0
    assert cli("predict", "-c", config, image_folder / "cat")[0] == 0
    (store,) = (tmp_path / "cache").glob("*.h5")

    code, _, err = cli("clean", "-c", config, "fit")
    assert code == 0 and "clean: removed" in err
    assert not (run_dir / "results.json").exists() and not (run_dir / "models").exists()
    assert (run_dir / "report.md").exists() and (run_dir / "features.json").exists()
    assert (run_dir / "predictions.csv").exists()  # only cleaning everything removes the predictions
    assert _status(cli, config)[1:] == ["fit: missing (never ran)",  # which codes the report reads is in results.json
                                        "report: stale (codes resnet50 layer1/avg changed, codes resnet50 pool/avg "
                                        "changed, results.json changed, fit will run)"]  # best row, learning curves

    assert cli("clean", "-c", config)[0] == 0
    assert store.exists()
    assert sorted(path.name for path in run_dir.iterdir()) == ["config.toml", "pipeline.log"]
    assert cli("clean", "-c", config)[2] == "clean: nothing to remove\n"

    assert cli("extract", "-c", config)[0] == 0
    assert cli("clean", "-c", config, "--cache")[0] == 0
    assert not store.exists()


def test_dry_run_and_status_of_a_new_config_write_nothing(cli, config, run_dir, tmp_path):
    code, out, _ = cli("run", "-c", config, "--dry-run")
    assert code == 0
    assert out.splitlines() == [
        "would run extract: missing (never ran)",
        "would run fit: missing (never ran, extract will run)",
        "would run report: missing (never ran, fit will run)",
    ]
    assert _status(cli, config) == [
        "extract: missing (never ran)",
        "fit: missing (never ran, extract will run)",
        "report: missing (never ran, fit will run)",
    ]
    assert not run_dir.exists() and not (tmp_path / "cache").exists()


def test_the_log_file_records_runs_and_failures_and_a_failed_stage_keeps_its_old_stamp(
    cli, config, image_folder, run_dir
):
    code, out, err = cli("run", "-c", config, "--quiet", *FAIL_ON_BAD_IMAGES)
    assert code == 0 and "test acc" in out and err == ""  # --quiet: the table, no progress lines
    (image_folder / "cat" / "cat3.png").write_bytes(b"\x89PNG truncated")
    code, _, err = cli("run", "-c", config, *FAIL_ON_BAD_IMAGES)
    assert code == 1
    assert err.splitlines()[-1].startswith("error: cannot read image") and "Traceback" not in err

    log = (run_dir / "pipeline.log").read_text()
    assert log.count("$ python -m pipeline run -c ") == 2
    assert "extract: done in " in log and "report: done in " in log and log.count("finished") == 1
    assert "ERROR   failed: " in log and "cannot read image" in log and "Traceback" in log
    assert _status(cli, config, *FAIL_ON_BAD_IMAGES)[0].startswith("extract: stale (images changed")


def test_usage_errors_exit_2(config):
    for argv in (["clean", "-c", str(config), "predictt"], ["status"], ["runn", "-c", str(config)]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2


# The rules themselves, on toy stages: a copies source.txt to a.txt, b copies a.txt to b.txt.


@pytest.fixture
def toy(tmp_path):
    source, a_txt, b_txt = (tmp_path / name for name in ("source.txt", "a.txt", "b.txt"))
    source.write_text("1")

    def copy(origin, target):
        return lambda config, progress: target.write_text(origin.read_text())

    stages = {
        "a": Stage("a", copy(source, a_txt), sections=("classifiers",),
                   inputs=lambda config: {"source.txt": file_digest(source)}, outputs=lambda config: [a_txt]),
        "b": Stage("b", copy(a_txt, b_txt), inputs=lambda config: {"a.txt": file_digest(a_txt)},
                   outputs=lambda config: [b_txt], upstream=("a",)),
    }
    return Config(run=RunSection(dir=str(tmp_path / "run"))), stages, source, b_txt


def _states(config, stages, force=()):
    return [str(step) if step.runs else f"{step.stage.name}: up to date"
            for step in plan(config, stages, list(stages), force)]


def test_toy_stages_are_stale_for_each_named_reason(toy):
    config, stages, source, b_txt = toy
    assert _states(config, stages) == ["a: missing (never ran)", "b: missing (never ran, a will run)"]
    execute(config, plan(config, stages, ["b"]))  # a target brings its upstream up to date first
    assert _states(config, stages) == ["a: up to date", "b: up to date"]

    source.write_text("2")
    assert _states(config, stages) == ["a: stale (source.txt changed)", "b: stale (a will run)"]
    execute(config, plan(config, stages, ["a"]))
    assert _states(config, stages) == ["a: up to date", "b: stale (a.txt changed, a ran since)"]

    config.classifiers.seed = 1
    assert _states(config, stages)[0] == "a: stale ([classifiers] changed)"
    assert _states(config, stages, force=["a"]) == ["a: forced", "b: stale (a.txt changed, a will run)"]
    execute(config, plan(config, stages, ["b"]))
    b_txt.unlink()
    assert _states(config, stages) == ["a: up to date", f"b: stale ({b_txt} is missing)"]


def test_a_failing_stage_writes_no_stamp_and_a_damaged_stamp_reads_as_never_ran(toy, caplog):
    config, stages, _, _ = toy

    def fails(config, progress):
        raise OSError("disk full")

    stages["b"] = dataclasses.replace(stages["b"], run=fails)
    with pytest.raises(OSError, match="disk full"):
        execute(config, plan(config, stages, ["b"]))
    assert stamp_path(config, "a").is_file() and not stamp_path(config, "b").exists()

    for damaged in ("{not json", '{"stage": "a"}'):
        stamp_path(config, "a").write_text(damaged)
        assert _states(config, stages)[0] == "a: missing (never ran)"
    assert caplog.text.count("ignoring the unreadable stamp") == 2
