"""Image sources: the sample table each one builds, image decoding, and their errors."""

import os
from urllib.error import URLError

import numpy as np
import pytest
import torchvision.datasets
from PIL import Image

from features import (DatasetUnavailable, ImageError, ImageFiles, ImageFolder, ImageManifest, Split, load_image,
                      open_named_dataset, resolve_weights)
from features.weights import preprocessing


def test_digits_are_real_images_with_a_stratified_seeded_split():
    source = open_named_dataset("digits", split=Split(test_size=0.25, seed=0))
    assert len(source) == 1797 and source.classes == [str(d) for d in range(10)]
    assert source.load(0).mode == "RGB" and source.load(0).size == (8, 8)
    assert source.images.max() == 255
    test_share = [(source.splits[source.labels == c] == "test").mean() for c in range(10)]
    assert np.allclose(test_share, 0.25, atol=0.02)
    again = open_named_dataset("digits", split=Split(test_size=0.25, seed=0))
    assert again.fingerprint == source.fingerprint
    assert open_named_dataset("digits", split=Split(test_size=0.25, seed=1)).fingerprint != source.fingerprint
    with_val = open_named_dataset("digits", split=Split(test_size=0.2, val_size=0.1, seed=0))
    assert dict(zip(*np.unique(with_val.splits, return_counts=True))) == {"test": 360, "train": 1257, "val": 180}


def test_image_folder_classes_ids_and_rgb(image_folder):
    source = ImageFolder(image_folder, split=Split(test_size=0.25, seed=0))
    assert source.classes == ["cat", "dog"]
    assert source.ids[:2] == ["cat/cat0.png", "cat/cat1.png"]
    assert {source.load(i).mode for i in range(len(source))} == {"RGB"}  # from L, RGBA, P
    assert sorted(source.splits).count("test") == 4


def test_split_folders_give_the_splits(split_image_folder):
    source = ImageFolder(split_image_folder)
    assert source.classes == ["cat", "dog"]
    assert dict(zip(*np.unique(source.splits, return_counts=True))) == {"test": 6, "train": 12}
    assert source.ids[0] == "test/cat/cat0.png"


def test_a_validation_folder_is_the_val_split(tmp_path, split_image_folder):
    (split_image_folder / "test").rename(split_image_folder / "validation")
    source = ImageFolder(split_image_folder)
    assert source.classes == ["cat", "dog"] and set(source.splits) == {"train", "val"}


def test_a_changed_file_changes_the_fingerprint_but_not_the_identity(image_folder):
    before = ImageFolder(image_folder)
    assert before.fingerprint and before.row_fingerprints  # taken now, before the change
    (image_folder / "dog" / "dog0.png").write_bytes((image_folder / "cat" / "cat0.png").read_bytes())
    after = ImageFolder(image_folder)
    assert after.fingerprint != before.fingerprint and after.identity == before.identity
    assert after.row_fingerprints[8] != before.row_fingerprints[8]
    assert after.row_fingerprints[:8] == before.row_fingerprints[:8]


def test_a_folder_without_images_says_what_layout_is_expected(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="no images found under .*<root>/<class>/<image>"):
        ImageFolder(tmp_path)


def test_an_empty_class_folder_is_ignored_with_a_warning(image_folder, caplog):
    (image_folder / "emu").mkdir()
    source = ImageFolder(image_folder)
    assert source.classes == ["cat", "dog"]
    assert "class folder" in caplog.text and "emu has no images; ignored" in caplog.text


def test_file_names_that_are_not_utf8_get_escaped_ids(image_folder):
    name = os.fsencode(image_folder / "cat") + b"/caf\xe9.png"
    with open(name, "wb") as file:
        file.write((image_folder / "cat" / "cat0.png").read_bytes())
    source = ImageFolder(image_folder)
    index = source.ids.index("cat/caf\\xe9.png")
    assert source.ids[index].encode("utf-8")  # valid UTF-8, storable in HDF5
    assert source.load(index).size == (24, 20)


def _manifest(folder, text):
    path = folder / "list.csv"
    path.write_text(text)
    return path


def test_manifest_with_splits(image_folder):
    source = ImageManifest(_manifest(image_folder, "path,label,split\ncat/cat0.png,cat,train\n"
                                                    "dog/dog0.png,dog,test\ncat/cat1.png,cat,val\n"))
    assert source.ids == ["cat/cat0.png", "dog/dog0.png", "cat/cat1.png"]
    assert list(source.labels) == [0, 1, 0] and source.classes == ["cat", "dog"]
    assert list(source.splits) == ["train", "test", "val"]
    assert source.load(1).mode == "RGB"
    assert source.identity.startswith("manifest:")


def test_manifest_without_splits_is_split_stratified(image_folder):
    rows = "".join(f"{c}/{c}{i}.png,{c}\n" for c in ("cat", "dog") for i in range(8))
    source = ImageManifest(_manifest(image_folder, "path,label\n" + rows), split=Split(test_size=0.25))
    assert [(source.splits[source.labels == c] == "test").sum() for c in (0, 1)] == [2, 2]


@pytest.mark.parametrize("text, message", [
    ("path,label\n../outside.png,cat\n", r"line 2: path '../outside.png' is outside the manifest's folder"),
    ("path,label\n/etc/passwd,cat\n", "is outside the manifest's folder"),
    ("file,class\ncat/cat0.png,cat\n", "has columns file, class; expected a header line path,label"),
    ("path,label,split\ncat/cat0.png,cat,training\n", "split 'training' is not valid; use train, val, test"),
    ("path,label\n", "lists no images"),
    ("path,label\ncat/cat0.png,cat\n./cat/cat0.png,dog\n", "line 3: path './cat/cat0.png' is listed twice"),
])
def test_bad_manifests_are_refused_naming_the_line(image_folder, text, message):
    with pytest.raises(ValueError, match=message):
        ImageManifest(_manifest(image_folder, text))


def test_image_files_expand_folders_for_prediction(image_folder, split_image_folder):
    source = ImageFiles([image_folder / "cat", split_image_folder / "test" / "dog" / "dog0.png"])
    assert len(source) == 9 and set(source.labels) == {-1}
    assert source.ids[-1].endswith("test/dog/dog0.png")
    with pytest.raises(FileNotFoundError, match="nowhere is neither an image file nor a folder"):
        ImageFiles([image_folder / "nowhere"])


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "I", "L", "P", "RGBA", "LA", "1"])
def test_every_pixel_mode_becomes_rgb(tmp_path, mode):
    grey = np.full((6, 5), 100, np.uint8)
    sixteen_bit = {"I;16": np.uint16, "I": np.int32}  # 100 in 8 bits is 25700 in 16
    image = (Image.fromarray((grey.astype(np.int64) * 257).astype(sixteen_bit[mode])) if mode in sixteen_bit
             else Image.fromarray(grey).convert(mode))
    assert image.mode == mode
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I;16", "I") else "x.png")
    image.save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (5, 6)
    if mode not in ("CMYK", "1"):
        assert abs(int(np.asarray(loaded)[0, 0, 0]) - 100) <= 1, mode  # 16-bit scaled, not clipped to white


def test_transparent_pixels_are_shown_over_white(tmp_path):
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert np.asarray(load_image(tmp_path / "clear.png")).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (30, 10), "red").save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").size == (10, 30)


def _photo(path, size, orientation=1):
    """A JPEG with detail at every scale (smooth gradients plus seeded noise), EXIF-orientated."""
    width, height = size
    ramp = np.add.outer(np.linspace(0, 150, height), np.linspace(0, 100, width))
    noise = np.random.default_rng(0).normal(0, 20, (height, width, 3))
    pixels = np.clip(ramp[..., None] + noise + [0, 40, 80], 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=90, exif=exif)
    return path


@pytest.mark.parametrize("orientation, shape", [(1, (1600, 1200)), (6, (1200, 1600))])
def test_large_jpegs_decode_at_reduced_scale_never_below_the_size_asked(tmp_path, orientation, shape):
    photo = _photo(tmp_path / "photo.jpg", (1600, 1200), orientation)
    assert load_image(photo).size == shape  # full size, orientation applied
    reduced = load_image(photo, min_side=256)  # 1/4 scale: 400 x 300, short side >= 256
    assert reduced.size == (shape[0] // 4, shape[1] // 4) and reduced.mode == "RGB"
    assert min(load_image(photo, min_side=290).size) == 300  # 1/4 scale still covers 290
    assert load_image(photo, min_side=700).size == shape  # 1/2 scale would be under 700
    assert min(load_image(photo, min_side=100).size) == 150  # 1/8: the codec's smallest scale


def test_reduced_scale_decoding_changes_the_network_input_only_slightly(tmp_path):
    transform = preprocessing(resolve_weights("resnet50", "random"), 224)
    photo = _photo(tmp_path / "photo.jpg", (3000, 2000))
    full = transform(load_image(photo))
    fast = transform(load_image(photo, min_side=transform.resize_size[0]))
    assert fast.shape == full.shape == (3, 224, 224)
    assert (fast - full).abs().mean() < 0.02 * full.std()


def test_other_formats_ignore_reduced_scale_decoding(tmp_path):
    Image.new("RGB", (1600, 1200), "red").save(tmp_path / "large.png")
    assert load_image(tmp_path / "large.png", min_side=100).size == (1600, 1200)


@pytest.mark.parametrize("content, message", [
    (b"", "cannot read image .*empty.png"),
    (b"\x89PNG\r\n\x1a\n truncated", "cannot read image .*empty.png"),
    (b"just some text", "cannot identify image file"),
])
def test_unreadable_files_raise_an_image_error_naming_them(tmp_path, content, message):
    (tmp_path / "empty.png").write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_image(tmp_path / "empty.png")


def test_decompression_bomb_guard_is_an_image_error(tmp_path, monkeypatch):
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageError, match="big.png is too large to be real.*MAX_IMAGE_PIXELS"):
        load_image(tmp_path / "big.png")


def test_named_dataset_offline_says_what_to_do(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DatasetUnavailable, match="cannot download dataset cifar10 into .*connect to the internet once"):
        open_named_dataset("cifar10", root=tmp_path)


def test_torchvision_file_dataset_uses_its_own_splits(tmp_path):
    """DTD laid out as torchvision leaves it after a download (so no download happens)."""
    data = tmp_path / "dtd" / "dtd"
    lists = {"train": ["banded/a.jpg", "dotted/b.jpg"], "val": ["banded/c.jpg", "dotted/d.jpg"],
             "test": ["dotted/e.jpg", "banded/f.jpg"]}
    (data / "labels").mkdir(parents=True)
    for split, names in lists.items():
        (data / "labels" / f"{split}1.txt").write_text("\n".join(names) + "\n")
        for name in names:
            (data / "images" / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), "blue").save(data / "images" / name)
    source = open_named_dataset("dtd", root=tmp_path)
    assert source.classes == ["banded", "dotted"]
    assert list(source.splits) == ["train", "train", "val", "val", "test", "test"]
    assert list(source.labels) == [0, 1, 0, 1, 1, 0]
    assert source.ids[0] == "dtd/dtd/images/banded/a.jpg" and source.load(5).mode == "RGB"


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; valid: digits, cifar10, oxford-pets"):
        open_named_dataset("mnist")


def test_a_named_dataset_is_fingerprinted_without_opening_it(tmp_path):
    from features import dataset_fingerprint

    assert dataset_fingerprint("digits").startswith("digits in scikit-learn ")  # bundled: its package's version
    assert dataset_fingerprint("cifar10", tmp_path / "nowhere") == "cifar10: not downloaded"
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"pickled images")
    before = dataset_fingerprint("cifar10", tmp_path)
    assert dataset_fingerprint("cifar10", tmp_path) == before != dataset_fingerprint("dtd", tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"other images")
    assert dataset_fingerprint("cifar10", tmp_path) != before


def test_a_stratified_split_is_made_when_first_read_and_fingerprinted_by_its_rule(image_folder):
    source = ImageFolder(image_folder, split=Split(test_size=0.25, seed=0))
    fingerprint = source.fingerprint
    assert "splits" not in vars(source)  # the fingerprint did not make the split (scikit-learn)
    assert sorted(set(source.splits)) == ["test", "train"]
    assert ImageFolder(image_folder, split=Split(test_size=0.25, seed=1)).fingerprint != fingerprint
    assert ImageFolder(image_folder, split=Split(test_size=0.25, seed=0)).fingerprint == fingerprint


def test_class_folders_are_searched_in_path_order_without_hidden_or_other_files(tmp_path):
    for name in ("cat/b.png", "cat/a-b/x.png", "cat/a/y.PNG", "cat/.hidden.png", "cat/.cache/z.png", "dog/d.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / name, format="PNG")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    source = ImageFolder(tmp_path)
    expected = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")
                      if path.suffix.lower() in (".png", ".jpg") and not any(part.startswith(".") for part in path.parts))
    assert source.ids == [path.as_posix() for path in expected] == ["cat/a/y.PNG", "cat/a-b/x.png", "cat/b.png", "dog/d.jpg"]
    assert [file.relative_to(tmp_path).as_posix() for file in source.files] == source.ids
