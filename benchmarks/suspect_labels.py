"""Do the report's suspect labels find wrong labels? Fashion-MNIST with labels moved on purpose.

It copies a class-balanced sample of a Fashion-MNIST image folder (``train/<class>/*.png``
and ``test/<class>/*.png``, from ``../shared/bench/fashion_mnist.py``), moves a seeded
``--noise`` share of the training images into another class's folder (a wrong label),
runs extract, fit and report on the copy, and counts how many of the moved images are
among the first 2 x moved rows of ``suspect_labels.csv`` (the recall at that depth). It
prints one Markdown block and appends it to ``--out``.

    python benchmarks/suspect_labels.py --out benchmarks/RESULTS.md

VGG16 with the ImageNet convolutional weights of ``../shared/bench/vgg16_imagenet_weights.py``
(``benchmarks/data/vgg16_imagenet_features.pth``) when that file is there, else random
weights (said in the output). Not a test: minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from pipeline import load_config  # noqa: E402
from pipeline.extract import extract  # noqa: E402
from pipeline.fit import fit  # noqa: E402
from pipeline.report import report  # noqa: E402

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "data" / "vgg16_imagenet_features.pth"


def noisy_copy(source: Path, target: Path, per_class: int, test_per_class: int, noise: float,
               seed: int) -> dict[str, tuple[str, str]]:
    """Copy ``per_class`` training and ``test_per_class`` test images of each class of
    ``source`` into ``target``, with a ``noise`` share of the training images (seeded) in a
    wrong class's folder. Returns the moved images: id -> (true class, given class)."""
    rng = np.random.default_rng(seed)
    classes = sorted(folder.name for folder in (source / "train").iterdir() if folder.is_dir())
    chosen = {split: {name: sorted((source / split / name).glob("*.png"))[:count] for name in classes}
              for split, count in (("train", per_class), ("test", test_per_class))}
    train = [(name, path) for name in classes for path in chosen["train"][name]]
    moved = {train[index]: classes[(classes.index(train[index][0]) + rng.integers(1, len(classes))) % len(classes)]
             for index in rng.choice(len(train), round(noise * len(train)), replace=False)}
    shutil.rmtree(target, ignore_errors=True)
    wrong = {}
    for split in ("train", "test"):
        for name in classes:
            for path in chosen[split][name]:
                given = moved.get((name, path), name) if split == "train" else name
                destination = target / split / given / path.name
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, destination)
                if given != name:
                    wrong[f"train/{given}/{path.name}"] = (name, given)
    return wrong


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE / "data" / "fashion-mnist-full",
                        help="a Fashion-MNIST image folder with train/ and test/ (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=Path("runs") / "suspect-labels",
                        help="where the copy, the cache and the run go (default: %(default)s)")
    parser.add_argument("--per-class", type=int, default=300, help="training images per class (default: 300)")
    parser.add_argument("--test-per-class", type=int, default=100, help="test images per class (default: 100)")
    parser.add_argument("--noise", type=float, default=0.05, help="share of training labels moved (default: 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="append the result to this Markdown file")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    images = args.work / "images"
    moved = noisy_copy(args.data, images, args.per_class, args.test_per_class, args.noise, args.seed)
    weights = str(WEIGHTS) if WEIGHTS.is_file() else "random"
    config_path = args.work / "config.toml"
    config_path.write_text(textwrap.dedent(f"""\
        [data]
        root = "{images.resolve()}"

        [features]
        backbones = ["vgg16"]
        weights = "{weights}"
        pooling = ["avg"]
        image_size = 64
        batch_size = 64
        num_workers = 2
        cache_dir = "cache"

        [features.taps]
        vgg16 = ["pool3", "pool4"]

        [classifiers]
        models = ["logreg", "svm-rbf"]
        cv_folds = 5

        [run]
        dir = "run"
        """))
    config = load_config(config_path)
    shutil.rmtree(args.work / "run", ignore_errors=True)
    timings = {}
    for stage in (extract, fit, report):
        stage_started = time.perf_counter()
        stage(config, progress=False)
        timings[stage.__name__] = time.perf_counter() - stage_started
    with open(args.work / "run" / "suspect_labels.csv", newline="") as file:
        suspects = list(csv.DictReader(file))
    depth = 2 * len(moved)
    found = sum(row["id"] in moved for row in suspects[:depth])
    in_all = sum(row["id"] in moved for row in suspects)
    with open(args.work / "run" / "results.csv", newline="") as file:
        best = next(csv.DictReader(file))
    n_classes = sum(folder.is_dir() for folder in (args.data / "train").iterdir())
    weights_note = "" if weights != "random" else " RANDOM weights: no ImageNet file in benchmarks/data."
    block = (
        f"\n`python benchmarks/suspect_labels.py --per-class {args.per_class} --test-per-class "
        f"{args.test_per_class} --noise {args.noise} --seed {args.seed}` ({time.strftime('%Y-%m-%d')}).{weights_note}\n\n"
        "| training images | moved | best model | its test accuracy | suspects listed | moved in the first 2 x moved "
        "rows | recall at 2 x moved | moved anywhere in the list | extract s | fit s | report s | total s |\n"
        + "| --- " * 12 + "|\n"
        f"| {args.per_class * n_classes:,} (N = {args.per_class}) | {len(moved)} | {best['tap']}/{best['pooling']} "
        f"{best['classifier']} | {100 * float(best['test_accuracy']):.1f} % | {len(suspects):,} | {found} | "
        f"{100 * found / len(moved):.1f} % | {in_all} | {timings['extract']:.0f} | {timings['fit']:.0f} | "
        f"{timings['report']:.0f} | {time.perf_counter() - started:.0f} |\n"
    )
    print(block)
    if args.out:
        with open(args.out, "a") as file:
            file.write(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
