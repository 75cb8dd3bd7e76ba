"""Where the grid search's fits run: a joblib backend, local processes unless told otherwise.

scikit-learn's ``GridSearchCV`` hands its fits to joblib, and joblib can send them to a
cluster through a backend: ``dask`` (``dask.distributed``) and ``ray`` register their own.
``search_backend`` is the one place that connects to such a cluster and makes it joblib's
backend for the searches run inside it, so that a user with a Dask or Ray cluster sets
``classifiers.backend`` (and ``classifiers.scheduler``, the cluster's address) and changes
nothing else. Local backends need no connection.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager, nullcontext

from features.errors import SettingError
from features.lifetime import end_with_parent

__all__ = ["BACKENDS", "check_backend", "search_backend"]


@contextmanager
def _dask(address: str):
    try:
        from dask.distributed import Client
    except ImportError:
        raise ImportError('classifiers.backend = "dask" needs dask.distributed: '
                          'pip install "dask[distributed]"') from None
    with Client(address or None):  # no address: a local cluster for this run
        yield


@contextmanager
def _ray(address: str):
    try:
        import ray
        from ray.util.joblib import register_ray
    except ImportError:
        raise ImportError('classifiers.backend = "ray" needs ray: pip install "ray[default]"') from None
    register_ray()
    ray.init(address=address or None)  # no address: a local Ray for this run
    try:
        yield
    finally:
        ray.shutdown()


_CLUSTERS = {"dask": _dask, "ray": _ray}
_LOCAL_PROCESSES = ("loky", "multiprocessing")
BACKENDS = ("loky", "threading", "multiprocessing", *_CLUSTERS)
"""``classifiers.backend`` values: joblib's local backends, then the clusters it can use."""


def check_backend(backend: str, scheduler: str = "") -> None:
    """Raise ``SettingError`` (a ``ValueError``), naming the setting, for a backend or a scheduler
    address that cannot work."""
    if backend not in BACKENDS:
        raise SettingError(f"classifiers.backend = {backend!r} is not valid; valid: {', '.join(BACKENDS)}")
    if scheduler and backend not in _CLUSTERS:
        raise SettingError(f"classifiers.scheduler = {scheduler!r} is the address of a {' or '.join(_CLUSTERS)} "
                           f"cluster, but classifiers.backend is {backend!r}")


_WORKER_PACKAGES = ("builtins", "warnings", "numpy", "scipy", "sklearn", "joblib", "threadpoolctl")
"""Where the categories of the warning filters a search's workers receive may come from."""


@contextmanager
def _filters_for_workers():
    """Keep, while inside, only the warning filters whose category a worker imports anyway.

    scikit-learn (1.7 and later) sends the caller's ``warnings.filters`` with every task it
    hands to joblib, and a worker unpickles each filter's category class. Importing torch
    adds filters of its own and of sympy's (``TracerWarning``, ``SymPyDeprecationWarning``),
    so every worker imported torch and sympy (about 450 MB and a second), and loky, which
    takes a worker that grows by 300 MB after its first task for a memory leak, replaced
    them with a warning ("A worker stopped while some jobs were given to the executor"):
    6 s of the demo's 0.4 s search. The filters left out concern warnings that only those
    packages raise, and a search runs none of their code.
    """
    with warnings.catch_warnings():  # restores the full list on the way out
        # assigned as the block opens, before any warning can be cached under the old list
        warnings.filters[:] = [entry for entry in warnings.filters
                               if entry[2].__module__.partition(".")[0] in _WORKER_PACKAGES]
        yield


@contextmanager
def search_backend(backend: str = "loky", scheduler: str = ""):
    """Run the joblib work inside on ``backend``; for a cluster, connect to ``scheduler`` first.

    Parameters
    ----------
    backend : {"loky", "threading", "multiprocessing", "dask", "ray"}
        ``loky`` (joblib's default): local processes.
    scheduler : str
        Address of the Dask scheduler (``tcp://host:8786``) or of the Ray cluster
        (``ray://host:10001``, or ``auto`` on a Ray node); empty starts a local one.
    """
    import joblib  # here: the names above are read when a config loads, before any search

    check_backend(backend, scheduler)
    cluster = _CLUSTERS.get(backend)
    # local worker processes end with this one, even when it is killed (features.end_with_parent)
    workers = {"initializer": end_with_parent, "initargs": (os.getpid(),)} if backend in _LOCAL_PROCESSES else {}
    with cluster(scheduler) if cluster else nullcontext(), joblib.parallel_config(backend=backend, **workers), \
            _filters_for_workers():
        yield
