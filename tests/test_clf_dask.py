"""The grid search on a real Dask cluster: a scheduler and two worker processes on loopback.

Dask is the ``cluster`` extra (``pip install "cnn-codes[cluster]"``), which ``make test``
installs: without it this test fails at the import, on purpose, rather than being skipped.
"""

import os

import psutil
import pytest
from dask.distributed import Client, LocalCluster, get_task_stream
from sklearn.datasets import make_classification

from classifiers import Tuning, search_backend, select_model

GRID = {"alpha": [1.0, 100.0, 1000.0]}


@pytest.fixture(scope="module")
def cluster():
    """A scheduler in this process and two single-threaded worker processes, all on 127.0.0.1."""
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        with Client(cluster) as client:
            pids = list(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
        yield cluster
    left = [pid for pid in pids if psutil.pid_exists(pid)]
    assert not left, f"the cluster's worker processes {left} outlived it"


def test_a_search_on_a_dask_cluster_runs_there_and_selects_what_loky_selects(cluster):
    X, y = make_classification(n_samples=120, n_features=8, n_classes=3, n_informative=5, random_state=0)
    with search_backend("loky"):
        local = select_model("ridge", X, y, Tuning(grid={"ridge": GRID}, cv_folds=3, n_jobs=2))

    with Client(cluster) as client:
        workers = set(client.scheduler_info()["workers"])
        with get_task_stream(client) as stream:  # every task the scheduler sees finish meanwhile
            with search_backend("dask", cluster.scheduler_address):
                chosen = select_model("ridge", X, y, Tuning(grid={"ridge": GRID}, cv_folds=3, n_jobs=2))

    assert chosen.candidates == local.candidates == 3
    assert chosen.params == local.params
    assert chosen.cv_accuracy == pytest.approx(local.cv_accuracy)
    # the fits were tasks of the cluster, run by its workers (a search that stayed local
    # leaves the stream empty); ridge's grid is walked as a path, one task per fold
    fits = [task for task in stream.data if "_on_split" in task["key"] or "fit_and_score" in task["key"]]
    assert fits, f"no fit ran on the cluster; its tasks: {[task['key'] for task in stream.data]}"
    assert {task["worker"] for task in fits} <= workers
