"""The runner keeps its promise: it sees its own outputs, answers without loading torch,
reruns only what changes results, answers like ``make -q``, and runs one process per run
folder; all through the command line."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


from features import codes_fingerprint

QUICK = ("--set", 'classifiers.models=["logreg"]', "--set", "classifiers.cv_folds=2", "--set", "classifiers.n_jobs=1")
REPO = Path(__file__).resolve().parents[1]


def _status(cli, config, *args):
    code, out, _ = cli("status", "-c", config, *args)
    return code, out.splitlines()


# 1. Outputs in the stamp


def test_a_deleted_model_makes_fit_stale_by_name_and_run_makes_it_again(cli, config, run_dir):
    assert cli("run", "-c", config, *QUICK)[0] == 0
    model = run_dir / "models" / "resnet50" / "pool-avg-logreg.joblib"
    model.unlink()
    code, lines = _status(cli, config, *QUICK)
    assert code == 1
    assert lines[1] == f"fit: stale ({model} is missing)"
    assert lines[2] == "report: stale (fit will run)"
    code, _, err = cli("run", "-c", config, *QUICK)
    assert code == 0 and "fit: stale (" in err and model.is_file()
    assert _status(cli, config, *QUICK)[0] == 0


def test_changed_and_added_outputs_are_named_and_predict_depends_on_its_model(cli, config, run_dir, image_folder):
    assert cli("run", "-c", config, *QUICK)[0] == 0
    assert cli("predict", "-c", config, *QUICK, image_folder / "cat")[0] == 0
    models = sorted((run_dir / "models").rglob("*.joblib"))
    for model in models:  # one byte appended to every model file
        model.write_bytes(model.read_bytes() + b"\0")
    (run_dir / "models" / "resnet50" / "stray.joblib").write_bytes(b"left here")
    (run_dir / "report.md").write_text("edited by hand")

    code, lines = _status(cli, config, *QUICK)
    assert code == 1
    assert lines[1].startswith(f"fit: stale ({models[0]} changed, ")
    assert "stray.joblib was added" in lines[1]
    assert lines[2] == f"report: stale ({run_dir / 'report.md'} changed, fit will run)"

    code, _, err = cli("predict", "-c", config, *QUICK, image_folder / "cat")  # not "nothing to do"
    assert code == 0, err
    assert "predict: stale (" in err and "fit: stale (" in err and "nothing to do" not in err
    assert cli("predict", "-c", config, *QUICK, image_folder / "cat")[2].endswith("nothing to do\n")


def test_a_store_extended_by_a_second_config_leaves_the_first_up_to_date(cli, config, run_dir, tmp_path,
                                                                         write_config, image_folder):
    assert cli("run", "-c", config, *QUICK)[0] == 0
    (store,) = (tmp_path / "cache").glob("*.h5")
    before = store.stat().st_mtime_ns, codes_fingerprint(store, "pool", "avg")
    other = write_config(f'root = "{image_folder}"', name="other.toml")
    code, _, err = cli("extract", "-c", other, "--set", "run.dir=runs/other",
                       "--set", 'features.taps.resnet50=["layer1", "layer2", "pool"]', "--set", 'features.pooling=["avg", "max"]')
    assert code == 0 and "computed layer1/max, layer2/avg, layer2/max, pool/max" in err
    assert store.stat().st_mtime_ns != before[0]  # the file was rewritten ...
    assert codes_fingerprint(store, "pool", "avg") == before[1]  # ... the codes this run reads were not
    code, lines = _status(cli, config, *QUICK)
    assert code == 0 and all(": up to date" in line for line in lines)


# 3. What changes results, and only that, makes a stage stale


def test_how_the_work_runs_makes_no_stage_stale(cli, config):
    assert cli("run", "-c", config, *QUICK)[0] == 0
    runtime = ["features.batch_size=3", "features.num_workers=1", "features.device=cpu",
               "features.channels_last=false", "features.compile=true", "features.map_budget_gb=1.0",
               "classifiers.n_jobs=2", "classifiers.backend=threading"]
    code, lines = _status(cli, config, *QUICK, *[arg for setting in runtime for arg in ("--set", setting)])
    assert code == 0 and all(": up to date (ran " in line for line in lines)
    code, lines = _status(cli, config, *QUICK, "--set", "features.image_size=48")
    assert code == 1 and lines[0] == "extract: stale ([features] changed)"
    code, lines = _status(cli, config, *QUICK, "--set", "classifiers.seed=1")
    assert code == 1 and lines[0].startswith("extract: up to date") and lines[1] == "fit: stale ([classifiers] changed)"


# 4. Exit codes like make -q, and --json


def test_status_exit_codes_and_json(cli, config):
    code, out, _ = cli("status", "-c", config, "--json")
    answer = json.loads(out)
    assert code == 1 and answer["up_to_date"] is False
    assert [(stage["stage"], stage["state"]) for stage in answer["stages"]] == [
        ("extract", "missing"), ("fit", "missing"), ("report", "missing")]
    assert answer["stages"][1]["reasons"] == ["never ran", "extract will run"]
    assert cli("run", "-c", config, *QUICK)[0] == 0
    code, out, _ = cli("status", "-c", config, *QUICK, "--json")
    answer = json.loads(out)
    assert code == 0 and answer["up_to_date"] is True
    assert all(stage["state"] == "up to date" and stage["finished"] and stage["seconds"] >= 0
               for stage in answer["stages"])
    assert cli("status", "-c", config, "--set", "features.pooling=mean")[0] == 2  # an error, as make -q


# 2. Answers at once: no torch, torchvision or scikit-learn for the commands that need none

HEAVY = ("torch", "torchvision", "sklearn")


def _modules_loaded(*argv, cwd):
    """Run the command line in a fresh process; its exit code and which heavy libraries it loaded."""
    probe = ("import json, sys\nfrom pipeline.cli import main\n"
             "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as exit:\n    code = exit.code\n"
             f"print(json.dumps([code, [name for name in {HEAVY!r} if name in sys.modules]]), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe, *map(str, argv)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_answers_that_need_no_network_import_no_torch(cli, config, image_folder, tmp_path):
    assert cli("run", "-c", config, *QUICK)[0] == 0
    assert cli("predict", "-c", config, *QUICK, image_folder / "cat")[0] == 0
    for argv, code in ((["--help"], 0), (["status", "-c", config, *QUICK], 0), (["status", "-c", config, "--json"], 1),
                       (["run", "-c", config, "--dry-run"], 0), (["fit", "-c", config, "-n"], 0),
                       (["run", "-c", config, *QUICK], 0), (["predict", "-c", config, *QUICK, image_folder / "cat"], 0),
                       (["clean", "-c", config, "report"], 0),
                       (["status", "-c", config, "--set", 'classifiers.models=["svn"]'], 2)):
        assert _modules_loaded(*argv, cwd=tmp_path) == [code, []], argv


def test_names_and_values_only_the_libraries_know_are_checked_before_any_work(cli, config, tmp_path):
    cases = [("classifiers.grid.logreg.c=[1.0]", "classifiers.grid.logreg: logreg has no parameter 'c' (did you mean 'C'?)"),
             ("classifiers.grid.logreg.C=[0.1,-1.0]", "classifiers.grid.logreg: The 'C' parameter of LogisticRegression "
                                                     "must be a float in the range (0.0, inf]. Got -1.0 instead."),
             ("classifiers.grid.mlp-head.weight_decay=[-0.01]", "classifiers.grid.mlp-head: weight_decay = -0.01 must be "
                                                               "at least 0"),
             ('features.backbones=["resnet5"]', "features.backbones = 'resnet5' is not valid (did you mean 'resnet50' or"),
             ('features.taps.resnet18=["layer9"]', "features.taps.resnet18 (or its default taps) with features.pooling: "
                                                 "unknown tap 'layer9' for backbone 'resnet18' (did you mean"),
             ("features.weights=IMAGENET1K_V3", "weights 'IMAGENET1K_V3' are not valid for resnet50")]
    for override, message in cases:
        code, _, err = cli("run", "-c", config, "--set", override)
        assert code == 2 and message in err and "Traceback" not in err, override
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs" / "test" / ".stamps").exists()


# 5. One run per run folder at a time


def _hold_lock(run_dir, pid, command="python -m pipeline run -c other.toml"):
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / ".lock"
    lock.write_text(json.dumps({"pid": pid, "host": os.uname().nodename, "started": "2026-01-01T00:00:00+00:00",
                                "command": command}))
    return lock


def test_a_busy_run_folder_refuses_with_no_wait_and_waits_otherwise(cli, config, run_dir):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = _hold_lock(run_dir, holder.pid)
        code, _, err = cli("run", "-c", config, *QUICK, "--no-wait")
        assert code == 2
        assert err == (f"error: {run_dir} is in use by pid {holder.pid} on {os.uname().nodename} (python -m pipeline "
                       f"run -c other.toml) since 2026-01-01T00:00:00+00:00; wait for it to finish (run without "
                       f"--no-wait to wait)\n")
        assert cli("clean", "-c", config, "--no-wait")[0] == 2
        assert not (run_dir / ".stamps").exists()  # nothing ran

        threading.Timer(1.5, lock.unlink).start()  # the other run finishes
        started = time.monotonic()
        code, _, err = cli("run", "-c", config, *QUICK)
        assert code == 0, err
        assert err.splitlines()[0].startswith(f"{run_dir} is in use by pid {holder.pid}")
        assert err.splitlines()[0].endswith("; waiting for it to finish")
        assert time.monotonic() - started > 1.4 and not lock.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_run_is_taken_over(cli, config, run_dir, tmp_path):
    run = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "-c", str(config), *QUICK], cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.DEVNULL)
    lock = run_dir / ".lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert json.loads(lock.read_text())["pid"] == run.pid  # left behind
    code, _, err = cli("run", "-c", config, *QUICK, "--no-wait")
    assert code == 0, err
    assert not lock.exists() and (run_dir / "report.md").is_file()
