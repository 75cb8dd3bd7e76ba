"""A failed run leaves the previous outputs as they were, removes its partial files, and
says in one line what could not be written and how much space is left (issue 25, item 3)."""

import builtins
import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import classifiers.persistence
import features.journal
import features.store
from features.files import WriteError

QUICK = ("--set", 'classifiers.models=["logreg"]', "--set", "classifiers.cv_folds=2", "--set", "classifiers.n_jobs=1")
REPO = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> dict:
    """Every file under ``folder`` and its bytes, but the log (which a run appends to)."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != "pipeline.log"}


class _FullDisk:
    """A file open for writing on a full disk: it opens, and every write fails."""

    def __init__(self, file):
        self._file = file

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._file.close()

    def __getattr__(self, name):
        return getattr(self._file, name)


def _fill(folder: Path, monkeypatch) -> None:
    """From now on, files opened for writing under ``folder`` cannot be written (the run
    folder's lock excepted: the disk fills up once the run holds it)."""
    real_open = io.open

    def open_(file, mode="r", *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        if (isinstance(file, (str, Path)) and set(mode) & set("wax+") and Path(file).absolute().is_relative_to(folder)
                and not Path(file).name.startswith(".lock")):  # the disk filled up once the run held its lock
            return _FullDisk(opened)
        return opened

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)


def test_a_full_disk_in_the_run_folder_leaves_the_last_run_as_it_was(cli, config, run_dir, monkeypatch):
    assert cli("run", "-c", config, *QUICK)[0] == 0
    before = _files(run_dir)
    _fill(run_dir.absolute(), monkeypatch)
    code, _, err = cli("run", "-c", config, *QUICK, "--set", "classifiers.cv_folds=3")  # fit and report rerun
    monkeypatch.undo()
    assert code == 1
    assert "Traceback" not in err and "Logging error" not in err
    assert err.count("warning: cannot write") == 1 and "pipeline.log: No space left on device (" in err
    error = err.splitlines()[-1]
    assert error.startswith(f"error: cannot write {run_dir}/") and ": No space left on device (" in error
    assert error.endswith(" free there)")
    assert _files(run_dir) == before  # not a byte changed, nothing added, config.toml still the last run's


def test_a_failing_stage_changes_no_output_and_a_succeeding_one_replaces_the_whole_set(
        cli, config, run_dir, monkeypatch):
    assert cli("run", "-c", config, *QUICK, "--set", 'classifiers.models=["logreg", "linsvm"]')[0] == 0
    before = _files(run_dir)
    saved = []

    def save_then_fail(*args, **kwargs):
        if saved:
            raise WriteError("the second model cannot be saved")  # as a full disk would
        saved.append(args[1])
        return save_model(*args, **kwargs)

    save_model = classifiers.persistence.save_model
    monkeypatch.setattr(classifiers.persistence, "save_model", save_then_fail)
    code, _, err = cli("fit", "-c", config, "--force", "--set", 'classifiers.models=["logreg", "linsvm"]',
                       "--set", "classifiers.cv_folds=3")
    assert code == 1 and "the second model cannot be saved" in err and saved
    assert _files(run_dir) == before
    monkeypatch.undo()
    assert cli("run", "-c", config, *QUICK)[0] == 0  # logreg alone now: linsvm's model leaves the set
    models = sorted(path.name for path in (run_dir / "models").rglob("*.joblib"))
    assert models == ["layer1-avg-logreg.joblib", "pool-avg-logreg.joblib"]
    assert '"logreg"' in (run_dir / "config.toml").read_text() and '"linsvm"' not in (run_dir / "config.toml").read_text()
    assert not (run_dir / ".staging").exists()


def test_a_killed_fit_leaves_the_previous_outputs_and_the_next_run_clears_its_staging(cli, config, run_dir, tmp_path):
    assert cli("run", "-c", config, *QUICK)[0] == 0
    before = _files(run_dir)
    run = subprocess.Popen([sys.executable, "-m", "pipeline", "fit", "-c", str(config), "--force", *QUICK,
                            "--set", "classifiers.cv_folds=3"], cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (run_dir / ".staging").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert {name: data for name, data in _files(run_dir).items()
            if not name.startswith((".staging/", ".lock"))} == before
    assert cli("status", "-c", config, *QUICK)[0] == 0  # the last run is still up to date
    assert cli("run", "-c", config, *QUICK, "--set", "classifiers.cv_folds=3")[0] == 0
    assert not (run_dir / ".staging").exists()


def test_a_full_disk_in_the_cache_removes_partial_files_and_says_what_the_journal_holds(
        cli, config, tmp_path, forward_calls):
    written = []
    savez = np.savez

    def full_after_two(file, **arrays):
        if len(written) == 2:
            file.write(b"PK")  # some bytes reach the disk first
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(file.name)
        savez(file, **arrays)

    def rewrite_on_a_full_disk(partial, *args):
        Path(partial).write_bytes(b"\x89HDF")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features.journal.np, "savez", full_after_two)
        patch.setattr(features.store, "_rewrite", rewrite_on_a_full_disk)
        code, _, err = cli("extract", "-c", config)
    assert code == 1 and "Traceback" not in err
    cache = tmp_path / "cache"
    parts = next(cache.glob("*.h5.parts"))
    error = err.splitlines()[-1]
    assert error.startswith(f"error: cannot write {parts.with_suffix('')}: No space left on device (")
    assert f"the extraction journal keeps 2 finished batches (" in error and f"MB) in {parts}: the next" in error
    assert list(cache.glob("*.h5*")) == [parts]  # no store, no .h5.partial
    assert len(written) == 2 and sorted(path.suffix for path in parts.iterdir()) == [".npz", ".npz"]
    forward_calls.clear()
    assert cli("extract", "-c", config)[0] == 0  # resumes: the two journaled batches are not computed again
    assert sum(forward_calls) == 16 - 2 * 5 and not parts.exists()
    assert features.verify_store(next(cache.glob("*.h5"))) == []
