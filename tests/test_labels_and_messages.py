"""Labels checked like config keys, and error messages that name the folder, the close
matches or the problem (issue 25, items 1 and 7)."""

import shutil

import numpy as np
import pytest

import features
from features import ImageArrays, ImageFolder, ImageManifest, Split


def _manifest(image_folder, labels):
    rows = [f"{name}/{name}{index}.png,{label}" for (name, index), label
            in zip([(c, i) for c in ("cat", "dog") for i in range(8)], labels)]
    path = image_folder / "list.csv"
    path.write_text("path,label\n" + "\n".join(rows) + "\n")
    return path


def test_blank_labels_in_a_manifest_are_refused_before_any_cnn_work(cli, image_folder, write_config, forward_calls):
    labels = ["cat"] * 8 + ["dog"] * 8
    for row in (1, 3, 4, 6, 9, 11, 12):  # manifest lines 3, 5, 6, 8, 11, 13, 14
        labels[row] = "  " if row % 2 else ""
    config = write_config(f'manifest = "{_manifest(image_folder, labels)}"')
    code, _, err = cli("run", "-c", config)
    assert code == 1 and forward_calls == []
    assert "lines 3, 5, 6, 8, 11 (7 in all) have an empty label; give every image a class name" in err
    assert "Traceback" not in err


def test_labels_are_stripped_so_that_surrounding_spaces_never_make_a_class(image_folder, tmp_path):
    labels = [" cat", "cat ", "cat"] + ["cat"] * 5 + ["dog", " dog "] + ["dog"] * 6
    source = ImageManifest(_manifest(image_folder, labels))
    assert source.classes == ["cat", "dog"] and list(np.bincount(source.labels)) == [8, 8]
    (image_folder / "dog ").mkdir()  # a second folder whose name differs only by a space: the same class
    shutil.move(image_folder / "dog" / "dog0.png", image_folder / "dog " / "dog0.png")
    folder = ImageFolder(image_folder)
    assert folder.classes == ["cat", "dog"] and list(np.bincount(folder.labels)) == [8, 8]
    with pytest.raises(ValueError, match="empty name, or two names that differ only by surrounding spaces"):
        ImageArrays(np.zeros((4, 8, 8), np.uint8), [0, 1, 0, 1], classes=["a", "a "])


def test_a_blank_class_folder_is_refused_naming_it(image_folder):
    shutil.move(image_folder / "dog", image_folder / "  ")
    with pytest.raises(ValueError, match="images: the class folders '  ' have an empty label"):
        ImageFolder(image_folder)


def test_images_in_the_root_without_class_folders_are_told_where_to_go(tmp_path, image_folder):
    root = tmp_path / "flat"
    root.mkdir()
    for image in (image_folder / "cat").iterdir():
        shutil.copy(image, root / image.name)
    with pytest.raises(FileNotFoundError, match="not in class folders; put them in one folder per class"):
        ImageFolder(root)


def test_a_class_too_small_to_split_is_named(tmp_path, image_folder):
    for image in list((image_folder / "dog").iterdir())[1:]:
        image.unlink()
    source = ImageFolder(image_folder, split=Split(test_size=0.25))
    with pytest.raises(ValueError, match=r"class 'dog' has 1 image"):
        source.splits


def test_an_unknown_backbone_from_python_lists_the_close_matches(image_folder, tmp_path):
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg61' \(did you mean .*'vgg16'") as raised:
        features.extract(image_folder, backbone="vgg61", weights="random", cache_dir=tmp_path / "cache")
    assert len(str(raised.value)) < 600


def test_did_you_mean_for_a_tap_lists_a_handful_of_names(cli, config):
    code, _, err = cli("extract", "-c", config, "--set", "features.backbones=['mnasnet0_5']",
                       "--set", "features.taps={mnasnet0_5=['layrs.3']}")
    assert code == 2 and "did you mean 'layers.3'" in err
    assert len(err) < 600 and "python -m pipeline taps mnasnet0_5" in err


def test_a_failed_first_extract_leaves_no_store_and_verify_calls_an_empty_store_a_problem(
        cli, config, tmp_path, monkeypatch):
    import features.extraction

    def broken(*args, **kwargs):
        raise features.UserError("resnet50 failed on a batch")  # a user error: see test_cli for a bug
        yield

    monkeypatch.setattr(features.extraction, "_batches", broken)
    code, _, err = cli("extract", "-c", config)
    assert code == 1 and "failed on a batch" in err
    assert list((tmp_path / "cache").glob("*.h5*")) == []
    monkeypatch.undo()
    assert cli("extract", "-c", config)[0] == 0
    store = next((tmp_path / "cache").glob("*.h5"))
    import h5py

    with h5py.File(store, "r+") as file:  # what an empty store from an earlier version holds
        del file["features"]
        file.create_group("features")
        del file["samples/done"]
    code, out, _ = cli("verify", store)
    assert code == 1 and "holds no codes" in out
