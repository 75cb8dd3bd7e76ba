"""The CUDA paths in one short run: codes on the GPU against the CPU's, and a head's fit.

Run on a machine with a GPU (``benchmarks/gpu_check.sh`` runs it with the other GPU
benchmarks). It prints Markdown:

- codes parity: the digits demo's images (``--images``) (random weights, 64x64) through VGG16 and
  ResNet50 at their default taps, extracted on the CPU in float32, on CUDA in float32 and
  on CUDA in bfloat16, each into its own cache; per tap, the largest relative difference
  of the GPU's codes from the CPU's (``|gpu - cpu|.max() / |cpu|.max()``) and the
  extraction's wall time;
- a torch head (``mlp-head``'s settings) fitted on the same synthetic codes on the CPU and
  on CUDA: seconds and the two heads' agreement on held-out rows.

    python benchmarks/gpu_check.py --out gpu.md

Not a test: it needs a GPU to mean anything (``--device cpu`` runs both sides on the CPU).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

import features  # noqa: E402
from classifiers import make_model  # noqa: E402

BACKBONES = {"vgg16": ["pool3", "pool5"], "resnet50": ["layer3", "pool"]}


def digits(count: int) -> features.ImageArrays:
    """The first ``count`` of scikit-learn's bundled digits as 8-bit images."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images[:count] * (255 / 16)).astype(np.uint8)
    return features.ImageArrays(images, data.target[:count], classes=[str(c) for c in range(10)])


def extract(source, cache: Path, backbone: str, device: str, precision: str):
    started = time.perf_counter()
    store = features.extract(source, backbone=backbone, taps=BACKBONES[backbone], pooling=["avg"],
                             weights="random", image_size=64, cache_dir=cache, device=device,
                             precision=precision, batch_size=256, num_workers=0, progress=False)
    return store, time.perf_counter() - started


def parity_rows(device: str, scratch: Path, count: int) -> list[str]:
    source = digits(count)
    rows = ["| backbone | tap | device, precision | seconds | max relative difference from the CPU |",
            "| --- | --- | --- | --- | --- |"]
    for backbone, taps in BACKBONES.items():
        reference, seconds = extract(source, scratch / "cpu", backbone, "cpu", "float32")
        rows.append(f"| {backbone} | all | cpu, float32 | {seconds:.1f} | - |")
        for precision in ("float32", "bfloat16"):
            store, seconds = extract(source, scratch / f"{device}-{precision}", backbone, device, precision)
            for tap in taps:
                expected, _ = reference.codes(tap, "avg")
                got, _ = store.codes(tap, "avg")
                difference = np.abs(got - expected).max() / np.abs(expected).max()
                rows.append(f"| {backbone} | {tap} | {device}, {precision} | {seconds:.1f} | {difference:.2e} |")
                print(rows[-1], file=sys.stderr)
    return rows


def head_rows(device: str, rows: int = 20_000, width: int = 2_048) -> list[str]:
    generator = np.random.default_rng(0)
    centres = generator.normal(size=(10, width)).astype(np.float32)
    labels = generator.integers(0, 10, rows)
    codes = centres[labels] + 3 * generator.normal(size=(rows, width)).astype(np.float32)
    held = rows // 10
    fit, held_out = slice(0, rows - held), slice(rows - held, rows)
    lines = ["| head device | fit seconds | held-out accuracy |", "| --- | --- | --- |"]
    predictions = {}
    for where in ("cpu", device):
        model = make_model("mlp-head", [], random_state=0)
        model.set_params(classifier__device=where)
        started = time.perf_counter()
        model.fit(codes[fit], labels[fit])
        seconds = time.perf_counter() - started
        predictions[where] = model.predict(codes[held_out])
        accuracy = (predictions[where] == labels[held_out]).mean()
        label = f"{where} ({torch.get_num_threads()} threads)" if where == "cpu" else where
        lines.append(f"| {label} | {seconds:.1f} | {accuracy:.3f} |")
    agreement = (predictions["cpu"] == predictions[device]).mean()
    lines.append(f"\nThe CPU's and {device}'s heads agree on {agreement:.1%} of {held:,} held-out rows.")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--images", type=int, default=1_797, help="how many of the digits (default all 1,797)")
    parser.add_argument("--head-rows", type=int, default=20_000, help="rows of the heads' synthetic codes")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    lines = [f"GPU check on {name}: torch {torch.__version__}, {torch.get_num_threads()} CPU threads.", ""]
    with tempfile.TemporaryDirectory(prefix="cnncodes-gpu-") as scratch:
        lines += parity_rows(args.device, Path(scratch), args.images) + [""] + head_rows(args.device, args.head_rows)
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
