"""The HDF5 feature store: round trip, completion markers, and readable errors."""

import h5py
import numpy as np
import pytest

from features import FeatureStore, StoreError


def _new_store(path):
    return FeatureStore.create(
        path,
        ids=["a.png", "b.png", "c.png", "d.png"],
        labels=[0, 1, 0, 1],
        splits=["train", "train", "test", "test"],
        classes=["cat", "dog"],
        attrs={"backbone": "vgg16", "weights": "random(seed=0)"},
    )


def test_round_trip_by_split(tmp_path):
    codes = np.arange(12, dtype=np.float32).reshape(4, 3)
    with _new_store(tmp_path / "s.h5") as store:
        store.begin("pool3", "avg", n_features=3)
        store.write("pool3", "avg", 0, codes[:3])
        store.write("pool3", "avg", 3, codes[3:])
        store.finish("pool3", "avg")

    with FeatureStore(tmp_path / "s.h5") as store:
        assert store.available() == [("pool3", "avg")]
        assert store.classes == ["cat", "dog"]
        assert store.attrs["backbone"] == "vgg16"
        X, y = store.codes("pool3", "avg", split="test")
        np.testing.assert_array_equal(X, codes[2:])
        np.testing.assert_array_equal(y, [0, 1])
        X_all, y_all = store.codes("pool3", "avg")
        np.testing.assert_array_equal(X_all, codes)


def test_plain_h5py_reads_the_layout(tmp_path):
    with _new_store(tmp_path / "s.h5") as store:
        store.begin("layer3", "max", n_features=2)
        store.write("layer3", "max", 0, np.ones((4, 2), np.float32))
        store.finish("layer3", "max")
    with h5py.File(tmp_path / "s.h5") as file:
        assert file.attrs["format_version"] == 1
        assert file["features/layer3/max"].shape == (4, 2)
        assert file["features/layer3/max"].chunks[0] >= 1
        assert [s.decode() for s in file["samples/split"][()]] == ["train", "train", "test", "test"]
        assert list(file["samples/label"][()]) == [0, 1, 0, 1]


def test_unfinished_codes_are_invisible_and_rewritten(tmp_path):
    with _new_store(tmp_path / "s.h5") as store:
        store.begin("pool5", "avg", n_features=2)
        store.write("pool5", "avg", 0, np.ones((2, 2), np.float32))  # killed before finish
    with FeatureStore(tmp_path / "s.h5", mode="r+") as store:
        assert store.available() == []
        with pytest.raises(StoreError, match="no complete codes for tap 'pool5'.*run extract"):
            store.codes("pool5", "avg")
        store.begin("pool5", "avg", n_features=2)
        store.write("pool5", "avg", 0, np.zeros((4, 2), np.float32))
        store.finish("pool5", "avg")
        assert store.available() == [("pool5", "avg")]


def test_unreadable_file_says_what_to_do(tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not an hdf5 file")
    with pytest.raises(StoreError, match="broken.h5.*delete the file and run extract again"):
        FeatureStore(broken)
