"""Crash safety: an extraction killed with SIGKILL at random moments resumes to the same file."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import _make_images
from extraction_server import extract

HERE = Path(__file__).parent


def _contents(path):
    """Every dataset in a store (timestamps are attributes, so they are left out)."""
    found = {}
    with h5py.File(path) as file:
        file.visititems(lambda name, item: found.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return found


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _finished_ids(cache):
    """The images some killed run finished: done in the store, or in a journal part."""
    from features.journal import Journal
    from features.store import read_table

    finished = set()
    for store in {*cache.glob("*.h5"), *(parts.with_suffix("") for parts in cache.glob("*.h5.parts"))}:
        table = read_table(store)
        if table is not None:
            done = np.logical_and.reduce(list(table.done.values()))
            finished |= {sample for sample, row_done in zip(table.ids, done) if row_done}
        finished |= {sample for part in Journal(store).parts() for sample in part.ids}
    return finished


def test_killed_runs_resume_to_the_file_an_uninterrupted_run_writes(tmp_path, restore_threads, forward_calls):
    root, cache = tmp_path / "images", tmp_path / "cache"
    _make_images(root, per_class=30, seed=3)  # 60 images: 20 batches of 3
    reference = _contents(extract(root, tmp_path / "reference").path)

    rng = random.Random(0)

    def journaled_at_least(count):
        return lambda: len(list(cache.glob("*.parts/*.npz"))) >= count

    moments = [lambda: True, journaled_at_least(rng.randint(1, 8)), journaled_at_least(rng.randint(9, 16)),
               journaled_at_least(20)]  # the last one while the journal is being folded into the store
    server = subprocess.Popen(
        [sys.executable, str(HERE / "extraction_server.py"), str(root), str(cache)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])},
    )
    with server:
        for ready in moments:
            server.stdin.write("run\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            while not ready() and _running(pid):
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.03))
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
            assert int(server.stdout.readline()) in (0, signal.SIGKILL)  # killed, or done before the kill
        server.stdin.close()

    finished = _finished_ids(cache)
    assert finished  # the killed runs got somewhere: the resumed run must not compute those again
    forward_calls.clear()
    done = extract(root, cache)  # resumes, computing only what no killed run finished
    assert sum(forward_calls) == done.images == 60 - len(finished)
    resumed = _contents(done.path)
    assert resumed.keys() == reference.keys()
    for name, values in reference.items():
        assert np.array_equal(resumed[name], values), name
    assert {path.suffix for path in cache.iterdir()} == {".h5"}  # no journal, lock or partial file left
