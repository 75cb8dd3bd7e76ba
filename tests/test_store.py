"""The HDF5 feature store: layout, the reader API, verify, and the writer lock."""

import os
import socket
import subprocess
import sys

import h5py
import numpy as np
import pytest

from features import FeatureStore, StoreError, StoreLocked, read_codes, verify_store
from features.locks import WriterLock, waiting
from features.store import SampleTable, rewrite_store

CODES = np.arange(15, dtype=np.float32).reshape(5, 3)


def _write(path, done_rows=(0, 1, 2, 3, 4), splits=("train", "train", "test", "test", "train"),
           skipped=("", "", "", "", "")):
    table = SampleTable(["a.png", "b.png", "c.png", "d.png", "e.png"], ["1:1"] * 5, np.array([0, 1, 0, 1, 1]),
                        np.array(splits, dtype=object), list(skipped), ["cat", "dog"])
    rows = np.array(done_rows, dtype=np.int64)

    def write_codes(put):
        put("pool3", "avg", rows, CODES[rows])
        put("pool5", "max", rows, -CODES[rows])

    rewrite_store(path, table, {"backbone": "vgg16", "weights": "random(seed=0)", "dtype": "float32"}, write_codes)
    return path


def test_round_trip_by_split(tmp_path):
    with FeatureStore(_write(tmp_path / "s.h5")) as store:
        assert sorted(store.available()) == [("pool3", "avg"), ("pool5", "max")]
        assert store.classes == ["cat", "dog"] and store.attrs["backbone"] == "vgg16"
        X, y = store.codes("pool3", "avg", split="test")
        np.testing.assert_array_equal(X, CODES[2:4])
        np.testing.assert_array_equal(y, [0, 1])
        X_all, _ = store.codes("pool3", "avg")
        np.testing.assert_array_equal(X_all, CODES)
    X, y = read_codes(tmp_path / "s.h5", "pool5", "max", "train")
    np.testing.assert_array_equal(X, -CODES[[0, 1, 4]])
    assert X.dtype == np.float32 and list(y) == [0, 1, 1]


def test_read_codes_reads_only_the_dataset_and_chunks_asked_for(tmp_path, monkeypatch):
    table = SampleTable([str(i) for i in range(3000)], ["x"] * 3000, np.arange(3000) % 2,
                        np.where(np.arange(3000) < 2900, "train", "test").astype(object), [""] * 3000, ["a", "b"])
    wide = np.random.default_rng(0).random((3000, 512), dtype=np.float32)  # 2 KiB rows: 512 rows per chunk
    rewrite_store(tmp_path / "big.h5", table, {"dtype": "float32"}, lambda put: (
        put("pool3", "avg", np.arange(3000), wide), put("pool5", "avg", np.arange(3000), wide)))
    reads = []
    original = h5py.Dataset.__getitem__

    def recording(self, selection):
        reads.append((self.name, selection))
        return original(self, selection)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
    X, y = read_codes(tmp_path / "big.h5", "pool5", "avg", "test")
    np.testing.assert_array_equal(X, wide[2900:])
    code_reads = [(name, selection) for name, selection in reads if name.startswith("/features")]
    assert code_reads == [("/features/pool5/avg", slice(2560, 3072))]  # the one chunk holding the test rows


def test_plain_h5py_reads_the_layout(tmp_path):
    with h5py.File(_write(tmp_path / "s.h5")) as file:
        assert file.attrs["format_version"] == 2
        assert file["features/pool3/avg"].shape == (5, 3) and file["features/pool3/avg"].attrs["complete"]
        assert file["features/pool3/avg"].chunks[0] >= 1
        assert file["samples/done/pool3/avg"][()].all()
        assert list(file["samples/split"].asstr()[()]) == ["train", "train", "test", "test", "train"]
        assert list(file["samples/label"][()]) == [0, 1, 0, 1, 1]


def test_skipped_rows_and_rows_that_left_the_source_are_not_read(tmp_path):
    path = _write(tmp_path / "s.h5", done_rows=(0, 2, 3, 4), splits=("train", "train", "test", "test", ""),
                  skipped=("", "cannot read image b.png: truncated", "", "", ""))
    with FeatureStore(path) as store:
        assert store.ids == ["a.png", "c.png", "d.png"] and list(store.splits) == ["train", "test", "test"]
        assert store.skipped == [("b.png", "cannot read image b.png: truncated")]
        X, y = store.codes("pool3", "avg")
        np.testing.assert_array_equal(X, CODES[[0, 2, 3]])
    assert verify_store(path) == []


def test_unfinished_codes_are_invisible(tmp_path):
    path = _write(tmp_path / "s.h5", done_rows=(0, 1, 2))
    with FeatureStore(path) as store:
        assert store.available() == []
        with pytest.raises(StoreError, match="no complete codes for tap 'pool3'.*run extract"):
            store.codes("pool3", "avg")
    assert verify_store(path) == [
        "/features/pool3/avg: 2 of 5 rows in use are not written (run extract to finish them)",
        "/features/pool5/max: 2 of 5 rows in use are not written (run extract to finish them)",
    ]


def test_verify_finds_non_finite_values_and_shapes_that_disagree(tmp_path):
    path = _write(tmp_path / "s.h5")
    with h5py.File(path, "r+") as file:
        file["features/pool3/avg"][1, 2] = np.nan
        file["features/pool5/max"].resize(4, axis=0)
    assert verify_store(path) == [
        "/features/pool3/avg fails its checksum in rows 0-4: its codes changed after they were written; delete "
        "the file and run extract again",
        "/features/pool3/avg: 1 written rows hold NaN or infinite values",
        "/features/pool5/max has 4 rows and 5 done markers for 5 samples",
    ]
    with h5py.File(path, "r+") as file:
        del file["samples/skipped"]
        file["samples/skipped"] = np.array(["", ""], dtype=object).astype(h5py.string_dtype())
    assert verify_store(path) == ["/samples/skipped has 2 rows, /samples/id 5"]


def test_unreadable_or_missing_files_say_what_to_do(tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not an hdf5 file")
    with pytest.raises(StoreError, match="broken.h5.*delete the file and run extract again"):
        FeatureStore(broken)
    assert "delete the file" in verify_store(broken)[0]
    with pytest.raises(StoreError, match="nothing.h5 does not exist; run extract first"):
        read_codes(tmp_path / "nothing.h5", "pool3", "avg")


def test_a_second_writer_is_told_who_holds_the_lock(tmp_path):
    with WriterLock(tmp_path / "s.h5"), waiting(False):  # --no-wait: told instead of waiting
        with pytest.raises(StoreLocked, match=rf"s.h5 is being written by pid {os.getpid()} on "
                                              rf"{socket.gethostname()} since .*; wait for it to finish"):
            with WriterLock(tmp_path / "s.h5"):
                pass
    assert not (tmp_path / "s.h5.lock").exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    lock = tmp_path / "s.h5.lock"
    lock.write_text(f'{{"pid": {dead_pid}, "host": "{socket.gethostname()}", "started": "earlier"}}')
    with WriterLock(tmp_path / "s.h5"):
        assert f'"pid": {os.getpid()}' in lock.read_text()
    lock.write_text(f'{{"pid": {dead_pid}, "host": "another-host", "started": "earlier"}}')
    with waiting(False), pytest.raises(StoreLocked, match=f"pid {dead_pid} on another-host"):  # cannot tell: not taken
        with WriterLock(tmp_path / "s.h5"):
            pass


def test_codes_fingerprint_follows_what_reading_gives_not_the_file(tmp_path):
    from features import codes_fingerprint

    path = _write(tmp_path / "s.h5")
    before = codes_fingerprint(path, "pool3", "avg")
    with h5py.File(path, "r+") as file:  # a store from before the digest: computed from the sample table
        del file["features/pool3/avg"].attrs["rows_digest"]
    assert codes_fingerprint(path, "pool3", "avg") == before
    assert codes_fingerprint(path, "pool9", "avg") == "missing" == codes_fingerprint(tmp_path / "no.h5", "pool3", "avg")

    assert codes_fingerprint(_write(tmp_path / "again.h5"), "pool3", "avg") == before  # the same rows, another file
    moved = _write(tmp_path / "moved.h5", splits=("train", "test", "test", "test", "train"))  # a row moved to test
    assert codes_fingerprint(moved, "pool3", "avg") != before
    partial = _write(tmp_path / "partial.h5", done_rows=(0, 1, 2, 3))  # a row not written: incomplete
    assert codes_fingerprint(partial, "pool3", "avg") not in (before, "missing")


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    from features.files import file_digest, write_atomic

    path = tmp_path / "results.json"
    write_atomic(path, lambda partial: partial.write_text("old"))
    before = file_digest(path)

    def fails(partial):
        partial.write_text("half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, fails)
    assert path.read_text() == "old" and file_digest(path) == before
    write_atomic(path, lambda partial: partial.write_text(partial.read_text() + " and new"), start_from_old=True)
    assert path.read_text() == "old and new" and not (tmp_path / "results.json.partial").exists()
