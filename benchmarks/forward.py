"""The bare forward under each of the network's settings: layout, BatchNorm folding, precision.

For each backbone x input size it times the tap extractor on one normalised batch already
on the device, in interleaved rounds (this machine's speed drifts by 10-30 % over
minutes, so each variant runs right after the others in every round), and prints images/s
per round and each variant's median ratio to the first (the plain float32 network in the
default layout, BatchNorms kept):

- ``plain``: float32, default (contiguous) layout, BatchNorm layers kept;
- ``channels_last``: the channels-last memory format;
- ``folded``: channels-last with the BatchNorms folded into the convolutions (what
  extraction runs by default);
- ``bfloat16``: that under bfloat16 autocast.

    python benchmarks/forward.py
    python benchmarks/forward.py --backbones resnet50 --sizes 224 --batch-size 16 --device cuda

Not a test: minutes on a laptop CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from features import Forward, get_backbone, resolve_weights  # noqa: E402
from features.weights import build_tap_extractor, preprocessing  # noqa: E402

VARIANTS = {
    "plain": (Forward(channels_last=False), False),
    "channels_last": (Forward(), False),
    "folded": (Forward(), True),
    "bfloat16": (Forward(precision="bfloat16"), True),
}
"""name: (settings, whether the BatchNorms are folded)."""


def network(backbone: str, taps: list[str], forward: Forward, fold: bool, size: int, batch_size: int):
    extractor = build_tap_extractor(resolve_weights(backbone, "random"), taps, size)
    if fold:
        return forward.model(extractor, batch_size)
    return extractor.to(forward.device, memory_format=forward.memory_format)


def rate(model, images, forward: Forward, seconds: float) -> float:
    """Images/s of ``model`` on ``images`` over about ``seconds``, after a warm-up call."""
    synchronize = torch.cuda.synchronize if forward.on_cuda else lambda: None
    with forward.running():
        model(images)
        synchronize()
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            model(images)
            count += len(images)
        synchronize()
        return count / (time.perf_counter() - started)


def measure(backbone: str, size: int, args) -> list[str]:
    taps = list(get_backbone(backbone).default_taps)
    weights = resolve_weights(backbone, "random")
    pixels = torch.randint(0, 256, (args.batch_size, 3, size, size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    variants = {name: (Forward(args.device, forward.precision, forward.channels_last), fold)
                for name, (forward, fold) in VARIANTS.items() if name in args.variants}
    models = {name: network(backbone, taps, forward, fold, size, args.batch_size)
              for name, (forward, fold) in variants.items()}
    inputs = {name: forward.inputs(pixels, preprocessing(weights, size)) for name, (forward, _) in variants.items()}
    rounds = []
    for _ in range(args.repeats):
        rounds.append({name: rate(models[name], inputs[name], variants[name][0], args.seconds) for name in variants})
        print(f"{backbone} {size}x{size}: " + ", ".join(f"{name} {value:.1f}" for name, value in rounds[-1].items()),
              file=sys.stderr)
    first = next(iter(variants))
    return [f"| {backbone} | {size} | {args.batch_size} | {name} | "
            + " / ".join(f"{r[name]:.1f}" for r in rounds)
            + f" | {100 * (np.median([r[name] / r[first] for r in rounds]) - 1):+.0f} % |" for name in variants]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["vgg16", "resnet50"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 224])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=3.0, help="per variant per round (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args(argv)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    lines = [f"Bare forward, images/s per round (`python benchmarks/forward.py {command}`; "
             f"{torch.get_num_threads()} torch threads, device {args.device}), and the median of each round's "
             f"ratio to {args.variants[0]}:", "",
             "| backbone | input | batch | variant | images/s per round | against the first |",
             "| --- | --- | --- | --- | --- | --- |"]
    for size in args.sizes:
        for backbone in args.backbones:
            lines += measure(backbone, size, args)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
