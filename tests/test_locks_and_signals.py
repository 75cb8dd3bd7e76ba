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

import features.lock

REPO = Path(__file__).resolve().parents[1]


def _hold(lock: Path, pid: int) -> None:
    lock.write_text(json.dumps({"pid": pid, "host": os.uname().nodename, "started": "2026-01-01T00:00:00+00:00"}))


def test_a_store_being_written_is_waited_for_and_a_dead_writers_lock_taken_over(
        cli, config, tmp_path, write_config, image_folder, monkeypatch):
    monkeypatch.setattr(features.lock, "POLL_SECONDS", 0.1)
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
