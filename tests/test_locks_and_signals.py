"""Locks wait, and no process outlives the run (issue 25, items 5 and 6)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import features.locks
from features.store import read_table

REPO = Path(__file__).resolve().parents[1]


def _hold(lock: Path, pid: int) -> None:
    lock.write_text(json.dumps({"pid": pid, "host": os.uname().nodename, "started": "2026-01-01T00:00:00+00:00"}))


def test_a_store_being_written_is_waited_for_and_a_dead_writers_lock_taken_over(
        cli, config, tmp_path, write_config, image_folder, monkeypatch):
    monkeypatch.setattr(features.locks, "POLL_SECONDS", 0.1)
    assert cli("extract", "-c", config)[0] == 0
    store = next((tmp_path / "cache").glob("*.h5"))
    other = write_config(f'root = "{image_folder}"', name="other.toml")  # another run on the same cache
    other.write_text(other.read_text().replace("runs/test", "runs/other"))
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    lock = store.with_name(store.name + ".lock")
    try:
        _hold(lock, writer.pid)
        code, _, err = cli("extract", "-c", other, "--force", "--no-wait")
        assert code == 2 and err.splitlines()[-1] == (
            f"error: {store} is being written by pid {writer.pid} on {os.uname().nodename} since "
            f"2026-01-01T00:00:00+00:00; wait for it to finish (run without --no-wait to wait)")
        threading.Timer(1.0, lambda: (writer.kill(), writer.wait())).start()  # it dies, leaving its lock
        started = time.monotonic()
        code, _, err = cli("extract", "-c", other, "--force")
        assert code == 0, err
        assert f"{store} is being written by pid {writer.pid}" in err and "; waiting for it to finish" in err
        assert time.monotonic() - started > 0.9 and not lock.exists()
    finally:
        writer.kill()
        writer.wait()


def _descendants(pid: int) -> list[int]:
    """The processes that ``pid`` started, and those they started (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except OSError:  # ended meanwhile
            continue
    found, pending = [], [pid]
    while pending:
        started_by = pending.pop()
        children = [child for child, parent in parents.items() if parent == started_by]
        found += children
        pending += children
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start(code: str, tmp_path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


SEARCH = """
import time, joblib
from classifiers import search_backend
with search_backend("{backend}"):
    print("working", flush=True)
    joblib.Parallel(n_jobs=2)(joblib.delayed(time.sleep)(120) for _ in range(2))
"""

DATALOADER = """
import numpy as np, features
images = np.random.default_rng(0).integers(0, 255, (4000, 24, 24, 3), dtype=np.uint8)
print("working", flush=True)
features.extract(features.ImageArrays(images, np.arange(4000) % 2), backbone="resnet50", taps=["layer1"],
                 weights="random", image_size=32, batch_size=2, num_workers=2, progress=False)
"""


@pytest.mark.parametrize("backend", ["loky", "multiprocessing", "dataloader", "dask"])
def test_workers_end_within_seconds_when_the_run_is_killed(tmp_path, backend):
    if backend == "dask":
        pytest.importorskip("dask.distributed")
    parent = _start(DATALOADER if backend == "dataloader" else SEARCH.format(backend=backend), tmp_path)
    try:
        assert parent.stdout.readline() == "working\n"
        deadline = time.monotonic() + 60
        while len(workers := _descendants(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) >= 2, "the workers never started"
        time.sleep(1)  # and those they start
        workers = _descendants(parent.pid)
    finally:
        parent.kill()
        parent.wait()
    killed = time.monotonic()
    while any(map(_running, workers)) and time.monotonic() - killed < 10:
        time.sleep(0.1)
    assert not any(map(_running, workers)), f"workers outlived their parent by {time.monotonic() - killed:.0f} s"
    assert time.monotonic() - killed < (8 if backend == "dask" else 3)  # dask: distributed's own watch, ~2 s


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_extract_keeps_its_batches_says_so_and_exits_like_a_shell_expects(
        image_folder, write_config, tmp_path, signum, code):
    for index in range(300):  # enough batches of two to be interrupted in the middle
        os.link(image_folder / "cat" / "cat0.png", image_folder / "cat" / f"more{index}.png")
    config = write_config(f'root = "{image_folder}"')
    run = subprocess.Popen([sys.executable, "-m", "pipeline", "extract", "-c", str(config), "--set",
                            "features.batch_size=2"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                           stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a shell starts it
    deadline = time.monotonic() + 120
    while not list((tmp_path / "cache").glob("*.parts/*.npz")) and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signum)
    _, err = run.communicate(timeout=60)
    assert run.returncode == code, err
    assert f"interrupted ({signal.Signals(signum).name}); cached codes and finished outputs are kept" in err
    assert "Traceback" not in err
    table = read_table(next((tmp_path / "cache").glob("*.h5")))
    assert 0 < table.done[("pool", "avg")].sum() < 316
