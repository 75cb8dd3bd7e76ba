"""Extraction and the cache: reuse without CNN work, new taps, new and changed images, pooling, dtype."""

import os
import shutil

import h5py
import numpy as np
import pytest
from PIL import Image

from features import (FeatureStore, ImageFiles, ImageFolder, Recipe, Runtime, Split, compute_codes, extract_codes,
                      resolve_weights)
from features.extraction import auto_workers

WEIGHTS = resolve_weights("resnet50", "random")
RUNTIME = Runtime(batch_size=5, progress=False)


def _extract(root, cache, taps=("layer1",), poolings=("avg",), **options):
    source = root if not isinstance(root, os.PathLike) else ImageFolder(root, split=Split(**options.pop("split", {})))
    return extract_codes(source, Recipe(WEIGHTS, image_size=32, **options), taps=list(taps), poolings=list(poolings),
                         cache_dir=cache, runtime=RUNTIME)


def _codes(path, tap="layer1", pooling="avg"):
    with FeatureStore(path) as store:
        return dict(zip(store.ids, store.codes(tap, pooling)[0]))


def test_a_second_run_with_the_same_inputs_does_no_cnn_work(image_folder, tmp_path, forward_calls):
    first = _extract(image_folder, tmp_path / "cache", taps=["layer1", "pool"])
    assert sum(forward_calls) == 16 and first.images == 16 and len(first.computed) == 2
    modified = first.path.stat().st_mtime_ns
    forward_calls.clear()
    second = _extract(image_folder, tmp_path / "cache", taps=["layer1", "pool"])
    assert forward_calls == [] and second.computed == [] and second.images == 0
    assert second.cached == [("layer1", "avg"), ("pool", "avg")] and second.path == first.path
    assert first.path.stat().st_mtime_ns == modified  # not even rewritten
    assert not list((tmp_path / "cache").glob("*.parts")) and not list((tmp_path / "cache").glob("*.lock"))


def test_a_new_tap_or_pooling_adds_only_itself(image_folder, tmp_path, forward_calls):
    first = _extract(image_folder, tmp_path / "cache")
    before = _codes(first.path)
    second = _extract(image_folder, tmp_path / "cache", taps=["layer1", "pool"], poolings=["avg", "max"])
    assert second.path == first.path and second.cached == [("layer1", "avg")]
    assert second.computed == [("layer1", "max"), ("pool", "avg"), ("pool", "max")]
    after = _codes(second.path)
    assert all(np.array_equal(before[key], after[key]) for key in before)  # kept, not recomputed
    with FeatureStore(second.path) as store:
        assert sorted(store.available()) == [("layer1", "avg"), ("layer1", "max"), ("pool", "avg"), ("pool", "max")]


def test_new_images_add_rows_and_a_changed_image_is_recomputed(image_folder, tmp_path, forward_calls):
    first = _extract(image_folder, tmp_path / "cache")
    before = _codes(first.path)
    shutil.copy(image_folder / "dog" / "dog3.png", image_folder / "cat" / "cat8.png")
    Image.new("RGB", (24, 20), (250, 250, 0)).save(image_folder / "dog" / "dog1.png")
    forward_calls.clear()
    second = _extract(image_folder, tmp_path / "cache")
    assert second.path == first.path and sum(forward_calls) == 2
    assert sorted(second.computed_rows) == ["cat/cat8.png", "dog/dog1.png"]
    after = _codes(second.path)
    assert len(after) == 17
    assert not np.allclose(after["dog/dog1.png"], before["dog/dog1.png"])
    assert np.allclose(after["cat/cat8.png"], after["dog/dog3.png"], atol=1e-5)  # same pixels, same codes
    assert all(np.array_equal(after[key], before[key]) for key in before if key != "dog/dog1.png")


def test_splits_are_not_in_the_key_and_images_that_leave_keep_their_codes(image_folder, tmp_path, forward_calls):
    first = _extract(image_folder, tmp_path / "cache", split={"test_size": 0.25})
    forward_calls.clear()
    second = _extract(image_folder, tmp_path / "cache", split={"test_size": 0.5})
    assert forward_calls == [] and second.path == first.path
    with FeatureStore(second.path) as store:
        assert list(store.splits).count("test") == 8
    os.rename(image_folder / "cat" / "cat2.png", tmp_path / "away.png")  # rename keeps size and mtime
    _extract(image_folder, tmp_path / "cache")
    assert "cat/cat2.png" not in _codes(first.path)
    os.rename(tmp_path / "away.png", image_folder / "cat" / "cat2.png")
    back = _extract(image_folder, tmp_path / "cache")
    assert forward_calls == [] and back.cached == [("layer1", "avg")]
    assert len(_codes(first.path)) == 16


def test_poolings_give_their_shapes_and_vector_taps_pass_through(image_folder, tmp_path):
    done = _extract(image_folder, tmp_path / "cache", taps=["layer1", "pool"],
                    poolings=["avg", "max", "avgmax", "grid2"])
    with FeatureStore(done.path) as store:
        shapes = {key: store.codes(*key)[0].shape[1] for key in store.available()}
        avg, _ = store.codes("layer1", "avg")
        avgmax, _ = store.codes("layer1", "avgmax")
        grid, _ = store.codes("layer1", "grid2")
    assert shapes == {("layer1", "avg"): 256, ("layer1", "max"): 256, ("layer1", "avgmax"): 512,
                      ("layer1", "grid2"): 1024, ("pool", "avg"): 2048, ("pool", "max"): 2048,
                      ("pool", "avgmax"): 2048, ("pool", "grid2"): 2048}
    np.testing.assert_allclose(avgmax[:, :256], avg, rtol=1e-6)
    np.testing.assert_allclose(grid.reshape(-1, 256, 4).mean(axis=2), avg, rtol=1e-4, atol=1e-6)


def test_float16_storage_is_its_own_file(image_folder, tmp_path):
    full = _extract(image_folder, tmp_path / "cache")
    half = _extract(image_folder, tmp_path / "cache", dtype="float16")
    assert half.path != full.path
    with h5py.File(half.path) as file:
        assert file["features/layer1/avg"].dtype == np.float16 and file.attrs["dtype"] == "float16"
    codes = _codes(half.path)
    assert next(iter(codes.values())).dtype == np.float32  # read back as float32
    reference = _codes(full.path)
    assert all(np.allclose(codes[key], reference[key], rtol=1e-2, atol=1e-3) for key in codes)


def test_fast_decoding_is_part_of_the_key_and_recorded(image_folder, tmp_path):
    fast = _extract(image_folder, tmp_path / "cache")
    full = _extract(image_folder, tmp_path / "cache", fast_decode=False)
    assert full.path != fast.path
    with h5py.File(full.path) as file:
        assert '"fast_decode": false' in file.attrs["preprocessing"]
    codes, reference = _codes(full.path), _codes(fast.path)  # small images: nothing to reduce, same pixels
    assert all(np.array_equal(codes[key], reference[key]) for key in codes)


def test_large_jpegs_are_decoded_at_reduced_scale_by_extraction(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for index in range(3):  # 640x480 noisy photos: a 32x32 input needs an eighth of their pixels
            pixels = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / name / f"{index}.jpg", quality=90)
    fast = _codes(_extract(tmp_path / "photos", tmp_path / "cache").path)
    full = _codes(_extract(tmp_path / "photos", tmp_path / "cache", fast_decode=False).path)
    difference = [np.abs(fast[key] - full[key]).max() / np.abs(full[key]).max() for key in full]
    assert all(0 < value < 0.2 for value in difference)  # other pixels (JPEG's own downscaling), close codes


def test_in_memory_codes_match_the_store(image_folder, tmp_path):
    stored = _codes(_extract(image_folder, tmp_path / "cache", taps=["pool"]).path, tap="pool")
    (image_folder / "dog" / "dog9.png").write_bytes(b"not a png")
    codes, failed = compute_codes(ImageFiles([image_folder]), Recipe(WEIGHTS, image_size=32), taps=["pool"],
                                  poolings=["avg"],
                                  runtime=RUNTIME)
    assert len(failed) == 1 and failed[0][0].endswith("dog/dog9.png") and "cannot identify" in failed[0][1]
    np.testing.assert_allclose(codes[("pool", "avg")], np.stack(list(stored.values())), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("taps, poolings, message", [
    (["layer9"], ["avg"], r"unknown tap 'layer9' for backbone 'resnet50' \(did you mean 'layer4'.*\); valid taps: stem, layer1"),
    (["layer1"], ["mean"], "unknown pooling 'mean'; valid: avg, max, avgmax, grid<k>"),
])
def test_unknown_taps_and_poolings_list_the_valid_ones(image_folder, tmp_path, taps, poolings, message):
    with pytest.raises(ValueError, match=message):
        _extract(image_folder, tmp_path / "cache", taps=taps, poolings=poolings)


@pytest.mark.parametrize("cores, cpu, cuda", [(1, 1, 1), (2, 2, 1), (16, 16, 15), (64, 16, 16)])
def test_auto_workers_follow_the_cores_and_the_device(monkeypatch, cores, cpu, cuda):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert (auto_workers("cpu"), auto_workers("cuda:0")) == (cpu, cuda)


def test_auto_workers_share_the_cores_between_torchrun_processes(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert auto_workers("cuda:3") == 7
