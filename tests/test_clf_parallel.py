"""Where the grid search's fits run: joblib's backend, local by default, a cluster when configured."""

import sys

import pytest
from joblib.parallel import get_active_backend
from sklearn.datasets import make_classification

from classifiers import Tuning, search_backend, select_model
from pipeline import ConfigError, load_config


@pytest.mark.parametrize("backend, active", [("loky", "LokyBackend"), ("threading", "ThreadingBackend")])
def test_searches_run_on_the_configured_backend_with_the_same_result(backend, active):
    X, y = make_classification(n_samples=120, n_features=8, n_classes=3, n_informative=5, random_state=0)
    local = select_model("ridge", X, y, Tuning(cv_folds=3, n_jobs=2))
    with search_backend(backend):
        assert type(get_active_backend()[0]).__name__ == active
        chosen = select_model("ridge", X, y, Tuning(cv_folds=3, n_jobs=2))
    assert chosen.params == local.params and chosen.cv_accuracy == pytest.approx(local.cv_accuracy)


def _worker_imports_torch(_) -> bool:
    return "torch" in sys.modules


def test_search_workers_do_not_import_torch_for_its_warning_filters():
    """scikit-learn sends the caller's warning filters to its workers; torch's own (and sympy's)
    made each worker import torch, and loky replaced them as leaking memory, with a warning."""
    import warnings

    import torch  # noqa: F401  (the filters it adds are the point)
    from sklearn.utils.parallel import Parallel, delayed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # as torch's import does, made sure of
        with search_backend("loky"):
            assert Parallel(n_jobs=2)(delayed(_worker_imports_torch)(index) for index in range(4)) == [False] * 4
        assert any(entry[2] is torch.jit.TracerWarning for entry in warnings.filters)  # restored for the caller


@pytest.mark.parametrize("backend, install", [("dask", r'pip install "dask\[distributed\]"'),
                                              ("ray", r'pip install "ray\[default\]"')])
def test_a_cluster_backend_without_its_package_says_what_to_install(monkeypatch, backend, install):
    for module in ("dask", "dask.distributed", "ray", "ray.util.joblib"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(ImportError, match=f'classifiers.backend = "{backend}" needs .*: {install}'):
        with search_backend(backend, "tcp://scheduler:8786"):
            pass


@pytest.mark.parametrize("overrides, message", [
    (["classifiers.backend=spark"], r"classifiers.backend = 'spark' is not valid.*valid choices: loky, threading"),
    (["classifiers.scheduler=tcp://host:8786"], r"classifiers.scheduler = 'tcp://host:8786' is the address of a "
                                                r"dask or ray cluster, but classifiers.backend is 'loky'"),
])
def test_backend_settings_are_checked_when_the_config_loads(tmp_path, overrides, message):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nroot = "photos"\n')
    with pytest.raises(ConfigError, match=message):
        load_config(path, overrides)
    assert load_config(path, ["classifiers.backend=dask", "classifiers.scheduler=tcp://host:8786"]).classifiers.backend == "dask"
