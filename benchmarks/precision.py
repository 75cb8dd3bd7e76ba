"""float32, bfloat16 and int8 on this machine: their speed, and how far their codes are apart.

``speed`` (``make bench-precision``) prints the CPU's model and whether it has the
instructions that make bfloat16 and int8 fast (``avx512_bf16``, AMX, ``avx512_vnni``,
``avx_vnni``), then images/s of each precision for each backbone x input size:

- ``bare``: the tap extractor (default taps, BatchNorms folded, channels-last) on one
  normalised batch already in memory: the ceiling;
- ``stage``: ``extract_codes`` on images into a fresh cache, as the extract stage runs it:
  reading, decoding, the forward, pooling and the store, and for int8 its calibration and
  compilation (once per run; the table says how long they took).

This machine's speed drifts, and it is often shared: every round runs each precision
right after the others, and the table gives the best round (and each round). The stage
runs on ``--images`` random pictures, or on an image folder (``--data``, with ``--taps``
and ``--weights``); its stores are kept in ``--cache`` (one folder per precision, the
last round's) for ``codes`` and ``benchmarks/classifiers.py``:

    python benchmarks/precision.py speed
    python benchmarks/precision.py speed --backbones vgg16 --sizes 64 --bare-seconds 0 \\
        --data benchmarks/cache/fashion-2k2k --taps pool3 pool4 \\
        --weights benchmarks/data/vgg16_imagenet_features.pth --batch-size 64 --rounds 2
    python benchmarks/precision.py codes CACHE/float32/*.h5 CACHE/bfloat16/*.h5 CACHE/int8/*.h5
    python benchmarks/classifiers.py CACHE/*/*.h5 --models logreg linsvm svm-rbf

``codes`` prints, for every (tap, pooling) that the first store (float32) shares with
each other one, over the rows both have: the relative difference of the whole dataset,
``||B - A|| / ||A||`` (Frobenius), and the median and largest of single rows. Whole maps
(pooling ``none``) are compared in their stored dtype, as float32.

Not a test: minutes to an hour on a laptop CPU.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from benchmarks.extraction import publish  # noqa: E402
from benchmarks.forward import rate  # noqa: E402
from features import (  # noqa: E402
    PRECISIONS,
    FeatureStore,
    ImageArrays,
    Recipe,
    Runtime,
    extract_codes,
    get_backbone,
    open_source,
)
from features.forward import fold_batchnorm  # noqa: E402
from features.cpu import cpu_instructions  # noqa: E402
from features.quantize import calibration_path, int8_model  # noqa: E402
from features.weights import build_tap_extractor  # noqa: E402


def cpu_line() -> str:
    """The CPU's model name, threads, and which of the instructions that matter it has."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or platform.machine()) \
        if Path("/proc/cpuinfo").exists() else platform.processor() or platform.machine()
    flags = ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in cpu_instructions().items())
    return f"CPU: {model}, {torch.get_num_threads()} torch threads; {flags}"


def bare_rates(backbone: str, size: int, args) -> list[dict]:
    """Images/s of each precision's bare forward, one dict per round."""
    recipe = Recipe.resolve(backbone, args.weights if backbone == "vgg16" else "random", image_size=size)
    taps = args.taps if backbone == "vgg16" and args.taps else list(get_backbone(backbone).default_taps)
    runtime = Runtime(device="cpu", batch_size=args.batch_size)
    pixels = torch.randint(0, 256, (args.batch_size, 3, size, size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    models, forwards = {}, {}
    for precision in args.precisions:
        forward = forwards[precision] = runtime.forward(Recipe(recipe.weights, size, precision=precision))
        network = build_tap_extractor(recipe.weights, taps, size)
        if precision == "int8":  # calibrated on the batch itself: the speed does not depend on the ranges
            images = forward.inputs(pixels, recipe.transform)
            path = calibration_path(args.cache / "bare", backbone, {"size": size, "taps": taps})
            path.unlink(missing_ok=True)
            models[precision] = int8_model(fold_batchnorm(network), path, size, args.batch_size, lambda: [images])
        else:
            models[precision] = forward.model(network, args.batch_size)
    inputs = {precision: forwards[precision].inputs(pixels, recipe.transform) for precision in args.precisions}
    rounds = []
    for _ in range(args.rounds):
        rounds.append({precision: rate(models[precision], inputs[precision], forwards[precision], args.bare_seconds)
                       for precision in args.precisions})
        print(f"bare {backbone} {size}: {rounds[-1]}", file=sys.stderr)
    return rounds


def _source(size: int, args):
    if args.data:
        return open_source(str(args.data), cache_dir=str(args.cache))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, size, size, 3), dtype=np.uint8)
    return ImageArrays(images, np.arange(args.images) % 2, name=f"random-{size}")


def stage_rates(backbone: str, size: int, args) -> tuple[list[dict], dict]:
    """Images/s of each precision's extraction into a fresh cache, one dict per round, and
    the stores of the last round."""
    source = _source(size, args)
    weights = args.weights if backbone == "vgg16" else "random"
    taps = args.taps if backbone == "vgg16" and args.taps else list(get_backbone(backbone).default_taps)
    runtime = Runtime(device="cpu", batch_size=args.batch_size, num_workers=args.workers, progress=False)
    rounds, stores = [], {}
    for _ in range(args.rounds):
        rates = {}
        for precision in args.precisions:
            cache = args.cache / f"{backbone}-{size}" / precision
            shutil.rmtree(cache, ignore_errors=True)
            recipe = Recipe.resolve(backbone, weights, image_size=size, precision=precision,
                                    calibration_images=args.calibration_images)
            started = time.perf_counter()
            done = extract_codes(source, recipe, taps=taps, poolings=["avg"], cache_dir=cache, runtime=runtime)
            rates[precision] = done.images / (time.perf_counter() - started)
            stores[precision] = done.path
        rounds.append(rates)
        print(f"stage {backbone} {size}: {rates}", file=sys.stderr)
    return rounds, stores


def _cells(rounds: list[dict], precisions) -> list[str]:
    best = {precision: max(r[precision] for r in rounds) for precision in precisions}
    return [f"{best[p]:.1f} ({' / '.join(f'{r[p]:.1f}' for r in rounds)}) | {best[p] / best[precisions[0]]:.2f}x"
            for p in precisions]


def speed(args) -> str:
    lines = [f"Precisions' speed (`python benchmarks/precision.py {' '.join(args.argv)}`), images/s: best of "
             f"{args.rounds} interleaved rounds (each round in brackets), and the best against "
             f"{args.precisions[0]}'s best.", "", cpu_line(), "",
             "| backbone | input | measure | " + " | ".join(f"{p} | vs {args.precisions[0]}" for p in args.precisions)
             + " |", "| --- | --- | --- |" + " --- | --- |" * len(args.precisions)]
    for size in args.sizes:
        for backbone in args.backbones:
            if args.bare_seconds > 0:
                lines.append(f"| {backbone} | {size} | bare | " + " | ".join(_cells(bare_rates(backbone, size, args),
                                                                                   args.precisions)) + " |")
            if args.images or args.data:
                rounds, _ = stage_rates(backbone, size, args)
                lines.append(f"| {backbone} | {size} | stage | " + " | ".join(_cells(rounds, args.precisions)) + " |")
    return "\n".join(lines)


def _rows(store: FeatureStore, tap: str, pooling: str) -> dict[str, np.ndarray]:
    return dict(zip(store.ids, store.codes(tap, pooling)[0]))


def differences(reference: Path, other: Path) -> list[dict]:
    """One row per (tap, pooling) the two stores share: relative differences of ``other`` to ``reference``."""
    rows = []
    with FeatureStore(reference) as first, FeatureStore(other) as second:
        for tap, pooling in sorted(set(first.available()) & set(second.available())):
            a, b = _rows(first, tap, pooling), _rows(second, tap, pooling)
            ids = sorted(a.keys() & b.keys())
            A = np.stack([a[key] for key in ids]).reshape(len(ids), -1).astype(np.float64)
            B = np.stack([b[key] for key in ids]).reshape(len(ids), -1).astype(np.float64)
            per_row = np.linalg.norm(B - A, axis=1) / np.maximum(np.linalg.norm(A, axis=1), 1e-12)
            rows.append({"store": other.name, "precision": second.attrs.get("precision", "float32"), "tap": tap,
                         "pooling": pooling, "rows": len(ids), "features": A.shape[1],
                         "whole": np.linalg.norm(B - A) / np.linalg.norm(A),
                         "median row": float(np.median(per_row)), "largest row": float(per_row.max())})
    return rows


def codes(args) -> str:
    rows = [row for other in args.others for row in differences(args.reference, other)]
    lines = [f"Relative difference of the codes to `{args.reference.name}`'s:", "",
             "| store | precision | tap | pooling | rows | features | whole dataset | median row | largest row |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['store']} | {r['precision']} | {r['tap']} | {r['pooling']} | {r['rows']} | {r['features']} | "
              f"{r['whole']:.2e} | {r['median row']:.2e} | {r['largest row']:.2e} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also append the table here (benchmarks/RESULTS.md)")
    commands = parser.add_subparsers(dest="command", required=True)
    timing = commands.add_parser("speed", help="images/s of each precision, bare forward and stage")
    timing.add_argument("--backbones", nargs="+", default=["vgg16", "resnet50"])
    timing.add_argument("--sizes", nargs="+", type=int, default=[64, 224])
    timing.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    timing.add_argument("--batch-size", type=int, default=32)
    timing.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    timing.add_argument("--bare-seconds", type=float, default=5.0, help="per precision per round; 0: no bare rows")
    timing.add_argument("--images", type=int, default=256, help="random images for the stage; 0: no stage rows")
    timing.add_argument("--data", type=Path, help="an image folder for the stage instead")
    timing.add_argument("--taps", nargs="+", help="VGG16's taps (default: its default taps)")
    timing.add_argument("--weights", default="random", help="VGG16's weights (ResNet50's are random)")
    timing.add_argument("--workers", type=int, default=2, help="DataLoader workers of the stage")
    timing.add_argument("--calibration-images", type=int, default=Recipe.calibration_images,
                        help="int8's calibration sample in the stage (features.calibration_images; "
                             "default %(default)s)")
    timing.add_argument("--cache", type=Path, default=Path("benchmarks/cache/precision"))
    compare = commands.add_parser("codes", help="relative differences of stores' codes")
    compare.add_argument("reference", type=Path, help="the float32 store")
    compare.add_argument("others", type=Path, nargs="+", help="stores to compare with it (bfloat16, int8)")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    publish(speed(args) if args.command == "speed" else codes(args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
