"""Codes carry checksums: changed numbers are found by verify and refused by fit, NaN/inf
are named as such, and stores from before checksums are still read (issue 25, item 4)."""

import os
import shutil

import h5py
import numpy as np
import pytest

from features import StoreError, read_codes, verify_store
from features import checksums


def _store(tmp_path):
    return next((tmp_path / "cache").glob("*.h5"))


def _edit(store, name, change, rehash=False):
    """Change codes in place and put the file's modification time back, as a faulty disk would."""
    stat = os.stat(store)
    with h5py.File(store, "r+") as file:
        codes = file["features"][name][()]
        change(codes)
        file["features"][name][...] = codes
        if rehash:  # as if the numbers had been written so
            del file[checksums.GROUP][name]
            checksums.Rewrite(file, name).finish()
    os.utime(store, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_changed_codes_fail_verify_and_fit_names_the_store_tap_and_pooling(cli, config, tmp_path):
    assert cli("extract", "-c", config)[0] == 0
    store = _store(tmp_path)
    assert cli("verify", store)[0] == 0
    _edit(store, "layer1/avg", lambda codes: codes.__setitem__((3, 5), codes[3, 5] + 0.25))
    code, out, _ = cli("verify", store)
    assert code == 1 and "/features/layer1/avg fails its checksum in rows 0-" in out
    code, _, err = cli("run", "-c", config, "--force")
    assert code == 1 and "Traceback" not in err
    assert (f"feature store {store}: the codes of tap 'layer1' with pooling 'avg' fail their checksum" in err
            and "delete the file and run extract again" in err)


def test_nan_codes_are_named_as_such_not_as_a_grid_problem(cli, config, tmp_path):
    assert cli("extract", "-c", config)[0] == 0
    store = _store(tmp_path)
    _edit(store, "pool/avg", lambda codes: codes.__setitem__((2, 0), np.inf), rehash=True)
    code, out, _ = cli("verify", store)
    assert code == 1 and "/features/pool/avg: 1 written rows hold NaN or infinite values" in out
    assert "checksum" not in out
    code, _, err = cli("fit", "-c", config)
    assert code == 1 and "grid" not in err
    assert "the codes of tap 'pool' with pooling 'avg' hold NaN or infinite values in 1 of" in err


def test_a_store_without_checksums_is_read_and_says_so(cli, config, tmp_path):
    assert cli("extract", "-c", config)[0] == 0
    store = _store(tmp_path)
    with h5py.File(store, "r+") as file:  # what a store written before checksums holds
        del file[checksums.GROUP]
    code, out, err = cli("verify", store)
    assert code == 0 and out.endswith(": ok\n")
    assert "carries no checksums for layer1/avg, pool/avg (written before they existed)" in err
    X, _ = read_codes(store, "pool", "avg")
    assert np.isfinite(X).all()
    assert cli("fit", "-c", config)[0] == 0


def test_an_extended_store_checks_new_blocks_and_keeps_failing_old_damage(cli, config, tmp_path, image_folder):
    assert cli("extract", "-c", config, "--set", "features.taps={resnet50=['pool']}")[0] == 0
    store = _store(tmp_path)
    _edit(store, "pool/avg", lambda codes: codes.__setitem__((0, 0), codes[0, 0] * 2 + 1))
    shutil.copy(image_folder / "cat" / "cat0.png", image_folder / "cat" / "new.png")
    assert cli("extract", "-c", config)[0] == 0  # a new row in the damaged block, and layer1/avg
    assert [problem.split(" in rows")[0] for problem in verify_store(store)] == [
        "/features/pool/avg fails its checksum"]
    assert read_codes(store, "layer1", "avg")[0].shape[0] == 17
    with pytest.raises(StoreError, match="fail their checksum in rows 0-"):
        read_codes(store, "pool", "avg")
