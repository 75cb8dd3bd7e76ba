"""Extraction on several processes: shards per rank, joined by HDF5 virtual datasets, equal
to a single-process extraction; under torchrun with gloo on CPUs."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from features import (
    FeatureStore,
    ImageFolder,
    Recipe,
    Runtime,
    Shard,
    StoreError,
    consolidate_store,
    extract_codes,
    join_shard_stores,
    resolve_weights,
    verify_store,
)

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = resolve_weights("resnet50", "random")
RECIPE = Recipe(WEIGHTS, image_size=32)
RUNTIME = Runtime(batch_size=5, num_workers=0, progress=False)


def _by_id(path, tap="layer1", pooling="avg"):
    with FeatureStore(path) as store:
        X, y = store.codes(tap, pooling)
        return {sample: (row, label, split) for sample, row, label, split in zip(store.ids, X, y, store.splits)}


def _assert_same_store(joined, single, rtol=0.0):
    for key in (("layer1", "avg"), ("pool", "avg")):
        mine, reference = _by_id(joined, *key), _by_id(single, *key)
        assert mine.keys() == reference.keys()
        for sample, (row, label, split) in reference.items():
            np.testing.assert_allclose(mine[sample][0], row, rtol=rtol, atol=rtol / 10)
            assert mine[sample][1:] == (label, split)


def test_shards_joined_by_virtual_datasets_equal_one_extraction(image_folder, tmp_path, monkeypatch):
    source = ImageFolder(image_folder)
    single = extract_codes(source, RECIPE, taps=["layer1", "pool"], poolings=["avg"], cache_dir=tmp_path / "single",
                           runtime=RUNTIME)
    shards = [extract_codes(Shard(source, rank, 3), RECIPE, taps=["layer1", "pool"], poolings=["avg"],
                            cache_dir=tmp_path / "c", runtime=RUNTIME) for rank in range(3)]
    assert sorted(sum((Shard(source, rank, 3).ids for rank in range(3)), [])) == sorted(source.ids)
    assert len({shard.path for shard in shards}) == 3
    joined = join_shard_stores(source, RECIPE, cache_dir=tmp_path / "c", world=3)
    assert joined.name == single.path.name  # the source's own store, by the same key
    with h5py.File(joined) as file:
        dataset = file["features/layer1/avg"]
        assert dataset.is_virtual and {source.file_name for source in dataset.virtual_sources()} == {
            shard.path.name for shard in shards}  # names relative to the store: the folder can move
    assert joined.stat().st_size < 0.5 * single.path.stat().st_size  # no codes copied
    _assert_same_store(joined, single.path)
    assert verify_store(joined) == []
    monkeypatch.chdir(tmp_path / "single")  # read from elsewhere
    _assert_same_store(joined, single.path)


def test_a_joined_store_takes_later_work_and_refuses_missing_shards(image_folder, tmp_path, forward_calls):
    source = ImageFolder(image_folder)
    for rank in range(2):
        extract_codes(Shard(source, rank, 2), RECIPE, taps=["layer1"], poolings=["avg"], cache_dir=tmp_path / "c",
                      runtime=RUNTIME)
    joined = join_shard_stores(source, RECIPE, cache_dir=tmp_path / "c", world=2)
    before = _by_id(joined)
    forward_calls.clear()
    again = extract_codes(source, RECIPE, taps=["layer1"], poolings=["avg"], cache_dir=tmp_path / "c", runtime=RUNTIME)
    assert again.path == joined and forward_calls == [] and again.computed == []  # all there already
    more = extract_codes(source, RECIPE, taps=["layer1"], poolings=["avg", "max"], cache_dir=tmp_path / "c",
                         runtime=RUNTIME)
    assert more.computed == [("layer1", "max")]
    with h5py.File(joined) as file:  # changed in one process: the virtual datasets became ordinary ones
        assert not file["features/layer1/avg"].is_virtual
    after = _by_id(joined)
    assert all(np.array_equal(after[key][0], before[key][0]) for key in before)

    for rank in range(2):  # a new joined store, then a shard goes missing
        extract_codes(Shard(source, rank, 2), RECIPE, taps=["layer1"], poolings=["avg"], cache_dir=tmp_path / "d",
                      runtime=RUNTIME)
    joined = join_shard_stores(source, RECIPE, cache_dir=tmp_path / "d", world=2)
    shard = next((tmp_path / "d").glob("*rank1of2*.h5"))
    shard.rename(tmp_path / shard.name)
    with pytest.raises(StoreError, match=f"joined from shards that are missing beside it: {shard.name}"):
        FeatureStore(joined)
    (tmp_path / shard.name).rename(shard)  # back, then one self-contained file: the shards may go
    consolidate_store(joined)
    for path in (tmp_path / "d").glob("*rank*of2*.h5"):
        path.unlink()
    assert verify_store(joined) == [] and _by_id(joined).keys() == before.keys()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_torchrun_with_two_gloo_processes_equals_one_process(image_folder, write_config, tmp_path):
    config = write_config(f'root = "{image_folder}"')
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
               str(_free_port()), "-m", "pipeline", "extract", "-c", str(config)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 1 of 2, 8 images on cpu" in done.stderr and "2 shards joined" in done.stderr
    features = json.loads((tmp_path / "runs" / "test" / "features.json").read_text())
    joined = Path(features["resnet50"]["store"])
    single = extract_codes(ImageFolder(image_folder), RECIPE, taps=["layer1", "pool"], poolings=["avg"],
                           cache_dir=tmp_path / "single", runtime=RUNTIME)
    # one thread per process there, two here: float sums in another order, last bits differ
    # (channels-last convolutions split their sums by thread: up to 2e-5 on codes of ~1e-2)
    _assert_same_store(joined, single.path, rtol=1e-3)
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "up to date: extract; nothing to do" in again.stderr  # rank 0 stamped it
    refused = subprocess.run([*command[:-3], "fit", "-c", str(config)], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode != 0 and "under torchrun only `extract` runs on several processes" in refused.stderr


def test_a_shard_that_stopped_resumes_on_its_own(image_folder, tmp_path, forward_calls):
    source = ImageFolder(image_folder)
    shard = Shard(source, 0, 2)
    broken = image_folder / shard.ids[6]
    good = broken.read_bytes()
    broken.write_bytes(b"not an image")  # the rank stops there, as a crash would
    with pytest.raises(OSError, match="stopped"):
        extract_codes(Shard(ImageFolder(image_folder), 0, 2), RECIPE, taps=["layer1"], poolings=["avg"],
                      cache_dir=tmp_path / "c", runtime=RUNTIME, on_error="fail")
    assert sum(forward_calls) == 7  # its batches up to the bad image were computed and are kept
    broken.write_bytes(good)
    forward_calls.clear()
    resumed = extract_codes(Shard(ImageFolder(image_folder), 0, 2), RECIPE, taps=["layer1"], poolings=["avg"],
                            cache_dir=tmp_path / "c", runtime=RUNTIME)
    assert sum(forward_calls) == 1 and resumed.images == 1  # the rest only; the other shard is untouched
    assert not list((tmp_path / "c").glob("*rank1of2*"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a node with fewer GPUs than the rank asks for")
def test_a_rank_without_a_gpu_of_its_own_says_how_many_processes_to_start(image_folder, write_config):
    config = write_config(f'root = "{image_folder}"')
    env = {**os.environ, "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    done = subprocess.run([sys.executable, "-m", "pipeline", "extract", "-c", str(config),
                           "--set", 'features.device="cuda"'], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]  # a setting that cannot work here, like a config error
    assert 'local rank 1, which needs GPU 1: this node has none, or set features.device = "cpu"' in done.stderr
    assert "Traceback" not in done.stderr
