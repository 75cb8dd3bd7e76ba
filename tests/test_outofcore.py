"""Classifiers on codes larger than memory: shuffled row blocks from the store, partial_fit
heads, the chunked search, the fit stage's switch, and memory bounded by the budget."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification

from classifiers import BlockReader, TorchHead, Tuning, load_codes, select_in_blocks, select_model
from features import FeatureStore
from features.store import SampleTable, rewrite_store
from rss_probe import ENV, PROBE

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _store(path, n_rows=3000, n_features=16, seed=0):
    """A store whose rows are sorted by class within each split, as an image folder's are."""
    X, y = make_classification(n_samples=n_rows, n_features=n_features, n_informative=8, n_classes=3,
                               class_sep=1.5, random_state=seed)
    order = np.lexsort((y, np.arange(n_rows) % 4 == 0))  # train rows first, each split by class
    X, y = X[order].astype(np.float32), y[order]
    splits = np.where(np.sort(np.arange(n_rows) % 4 == 0), "test", "train").astype(object)
    table = SampleTable([str(row) for row in range(n_rows)], ["x"] * n_rows, y, splits, [""] * n_rows,
                        ["a", "b", "c"])
    rewrite_store(path, table, {"dtype": "float32"}, lambda put: put("t", "avg", np.arange(n_rows), X))
    return path


def test_shuffled_blocks_cover_every_row_once_and_mix_the_classes(tmp_path):
    with FeatureStore(_store(tmp_path / "s.h5", n_features=512)) as store:  # 512 rows per 1 MiB chunk
        positions = np.flatnonzero(store.splits == "train")
        for seed in (None, 3):
            blocks = list(store.blocks("t", "avg", positions, max_rows=300, seed=seed))
            X = np.concatenate([X for X, _ in blocks])
            assert all(len(y) <= 300 for _, y in blocks) and len(X) == len(positions)
            assert len(blocks) <= store.most_blocks(len(positions), 300)  # what a head's schedule spans
            everything, _ = store.codes("t", "avg", "train")
            assert sorted(map(bytes, X)) == sorted(map(bytes, everything))  # each row once
        assert np.mean([len(np.unique(y)) for _, y in blocks]) > 1.5  # in file order each holds ~1 class
        again = list(store.blocks("t", "avg", positions, max_rows=300, seed=3))
        assert all(np.array_equal(a[1], b[1]) for a, b in zip(again, blocks))  # seeded


def test_a_head_learns_block_by_block_with_partial_fit():
    X, y = make_classification(n_samples=1200, n_features=12, n_informative=6, n_classes=3, random_state=1)
    X = X.astype(np.float32)
    head = TorchHead(hidden_units=(32,), learning_rate=0.01, random_state=0)
    for _ in range(8):
        for start in range(0, 900, 300):
            head.partial_fit(X[start:start + 300], y[start:start + 300], classes=[0, 1, 2])
    assert head.n_iter_ == 24 and len(head.loss_curve_) == 24 and head.loss_curve_[-1] < head.loss_curve_[0]
    assert head.score(X[900:], y[900:]) > 0.7  # chance is 1/3
    with pytest.raises(ValueError, match="classes must be given on the first call"):
        TorchHead().partial_fit(X, y)
    with pytest.raises(ValueError, match="class_weight = 'balanced' needs every label at once"):
        TorchHead(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"y has labels \[7\] that are not in classes"):
        TorchHead().partial_fit(X[:10], np.full(10, 7), classes=[0, 1, 2]).partial_fit(X[:10], np.full(10, 7))


def test_the_search_in_blocks_finds_what_the_search_in_memory_finds(tmp_path):
    path = _store(tmp_path / "s.h5")
    in_memory, out_of_core = load_codes(path, "t", "avg"), load_codes(path, "t", "avg", memory_budget_gb=1e-5)
    assert in_memory.in_memory and not out_of_core.in_memory and out_of_core.X_fit is None
    np.testing.assert_array_equal(in_memory.y_fit, out_of_core.y_fit)
    grid = {"alpha": [1e-4, 10.0]}  # one good setting, one that cannot learn
    memory = select_model("sgd", in_memory.X_fit, in_memory.y_fit, Tuning(grid={"sgd": grid}, cv_folds=3))
    with FeatureStore(path) as store:
        reader = BlockReader(store, "t", "avg", out_of_core.row_shape, budget_gb=1e-5)  # 39 rows per block
        chunked = select_in_blocks("sgd", reader, out_of_core.positions_fit, out_of_core.y_fit, Tuning(grid={"sgd": grid}, cv_folds=3, chunk_epochs=10))
    assert reader.max_rows == 39
    assert chunked.params == memory.params == {"alpha": 1e-4} and chunked.candidates == 2 and chunked.folds == 3
    assert abs(chunked.cv_accuracy - memory.cv_accuracy) < 0.05
    # fewer passes over 39-row blocks than sgd's own convergence loop in memory: a few points lower
    assert chunked.model.score(in_memory.X_test, in_memory.y_test) > memory.model.score(in_memory.X_test,
                                                                                        in_memory.y_test) - 0.12
    with pytest.raises(ValueError, match="svm-rbf cannot learn from row blocks"):
        select_in_blocks("svm-rbf", reader, out_of_core.positions_fit, out_of_core.y_fit)


# Fitting sgd and a head with a budget of 8 MB, in a fresh process, on stores of 8,000 and
# 24,000 rows of 4 KiB (training codes: 23 and 70 MiB); the control reads the codes into memory.
MEASURE = PROBE + textwrap.dedent("""\
    import sys
    from classifiers import BlockReader, Tuning, load_codes, score_blocks, select_in_blocks
    from features import FeatureStore

    def fit(path, name):
        codes = load_codes(path, "t", "avg", memory_budget_gb=0.008)
        assert not codes.in_memory
        with FeatureStore(path) as store:
            reader = BlockReader(store, "t", "avg", codes.row_shape, 0.008)
            grid = {name: {"alpha": 1e-4} if name == "sgd" else {"weight_decay": 1e-3}}
            chosen = select_in_blocks(name, reader, codes.positions_fit, codes.y_fit,
                                      Tuning(cv_folds=2, chunk_epochs=1, grid=grid))
            return score_blocks(chosen.model, reader.blocks(codes.positions_test))

    for path in sys.argv[1:]:
        for name in ("sgd", "linear-head"):
            print(name, rise_kib(lambda: fit(path, name)))
        print("in-memory", rise_kib(lambda: load_codes(path, "t", "avg")))
""")


def test_out_of_core_memory_does_not_grow_with_the_rows(tmp_path):
    small, large = 8000, 24000
    paths = [_store(tmp_path / f"{rows}.h5", n_rows=rows, n_features=1024) for rows in (small, large)]
    done = subprocess.run([sys.executable, "-c", MEASURE, *map(str, paths)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, check=True)
    rises = [(name, int(kib) / 1024) for name, kib in map(str.split, done.stdout.splitlines())]
    small_rises, large_rises = dict(rises[:3]), dict(rises[3:])
    codes_mib = {rows: rows * 3 / 4 * 1024 * 4 / 2**20 for rows in (small, large)}  # training rows, float32
    for name in ("sgd", "linear-head"):
        assert large_rises[name] - small_rises[name] < (codes_mib[large] - codes_mib[small]) / 4, done.stdout
        assert large_rises[name] < codes_mib[large] * 0.75, done.stdout  # the 70 MiB were never all held
    assert large_rises["in-memory"] > codes_mib[large], done.stdout  # the control sees codes held in memory


def test_the_fit_stage_learns_in_blocks_over_the_budget_and_skips_who_cannot(cli, image_folder, write_config,
                                                                             tmp_path):
    config = write_config(f'root = "{image_folder}"')
    code, _, err = cli("run", "-c", config, "--set", 'classifiers.models=["logreg", "sgd", "linear-head"]',
                       "--set", "classifiers.cv_folds=2", "--set", "classifiers.memory_budget_gb=1e-6",
                       "--set", "classifiers.chunk_epochs=3")
    assert code == 0, err
    assert "over the memory budget of 1e-06 GB (classifiers.memory_budget_gb): learning from the store in row " \
           "blocks" in err
    assert "resnet50 pool/avg logreg skipped: its codes are over classifiers.memory_budget_gb" in err
    rows = json.loads((tmp_path / "runs" / "test" / "results.json").read_text())["rows"]
    assert sorted({row["classifier"] for row in rows}) == ["linear-head", "sgd"]
    assert all(row["out_of_core"] and row["epochs"] == 3 for row in rows)
    code, _, err = cli("run", "-c", config, "--set", 'classifiers.models=["logreg"]',
                       "--set", "classifiers.memory_budget_gb=1e-6")
    assert code == 1 and "none of classifiers.models can learn from row blocks; add sgd" in err
