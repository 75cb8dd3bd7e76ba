"""Shared fixtures: tiny generated image folders and config files, random weights only."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)

CLASSES = {"cat": (200, 60, 40), "dog": (40, 80, 200)}


def _make_images(folder, per_class: int, seed: int) -> None:
    """Noisy colour-coded images in several modes (RGB, grayscale, RGBA, palette)."""
    rng = np.random.default_rng(seed)
    modes = ["RGB", "L", "RGBA", "P"]
    for name, colour in CLASSES.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, (20, 24, 3)), 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels).convert(modes[index % len(modes)])
            image.save(folder / name / f"{name}{index}.png")


@pytest.fixture
def image_folder(tmp_path):
    """``<root>/<class>/*.png``: 2 classes x 8 images of 24x20 pixels, no split folders."""
    root = tmp_path / "images"
    _make_images(root, per_class=8, seed=0)
    (root / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes
    return root


@pytest.fixture
def split_image_folder(tmp_path):
    """``<root>/<split>/<class>/*.png``: 6 train and 3 test images per class."""
    root = tmp_path / "split-images"
    _make_images(root / "train", per_class=6, seed=1)
    _make_images(root / "test", per_class=3, seed=2)
    return root


@pytest.fixture
def write_config(tmp_path):
    """Write a small, fast config (ResNet50, random weights, 32x32) around a [data] line."""

    def write(data: str, name: str = "config.toml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(f"""\
            [data]
            {data}
            test_size = 0.25

            [features]
            backbones = ["resnet50"]
            weights = "random"
            image_size = 32
            batch_size = 5
            num_workers = 0
            cache_dir = "cache"

            [features.taps]
            resnet50 = ["layer1", "pool"]

            [classifiers]
            models = ["logreg", "linsvm"]
            fuse = []
            ensemble = 0

            [run]
            dir = "runs/test"
            """))
        return path

    return write


@pytest.fixture
def config(image_folder, write_config):
    """The small config over ``image_folder``."""
    return write_config(f'root = "{image_folder}"')


@pytest.fixture
def run_dir(tmp_path):
    """Its run folder."""
    return tmp_path / "runs" / "test"


@pytest.fixture
def cli(capsys):
    """Run the command line in-process: ``cli("run", "-c", path)`` -> (exit code, stdout, stderr)."""
    from pipeline.cli import main

    def run(*args):
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def forward_calls(monkeypatch):
    """Counts the CNN's forward passes in extraction: a list of batch sizes, one per pass."""
    import features.extraction

    calls = []
    build = features.extraction.build_tap_extractor

    def counting(weights, taps, *size):
        extractor = build(weights, taps, *size)
        extractor.register_forward_hook(lambda module, args, output: calls.append(len(args[0])))
        return extractor

    monkeypatch.setattr(features.extraction, "build_tap_extractor", counting)
    return calls


@pytest.fixture
def one_torch_thread():
    """One torch thread while the test runs: the heads' tiny networks only lose to thread
    synchronisation (tens of times slower on a busy two-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
