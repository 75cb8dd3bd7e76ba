"""int8 codes on the CPU: static post-training quantization of the backbone up to its taps.

``features.precision = "int8"`` runs the convolutions in 8-bit integers where the CPU has
them (VNNI: ``avx512_vnni`` or ``avx_vnni``): 4.3 times the float32 forward of VGG16
at 64 px on this project's AMD EPYC, codes 1-2 % away from float32's (``docs/speed.md``).

The path is PyTorch's maintained one, PT2E in torchao (``pip install
"cnn-codes[int8]"``): ``torch.export`` captures the tap extractor (BatchNorms folded),
``X86InductorQuantizer`` marks what runs in int8 (activations ``uint8`` per tensor, weights
``int8`` per output channel), a calibration runs the float network on a seeded, stratified
sample of the training images to set the activations' ranges (their minimum and maximum
over the sample: the quantizer's default histograms cost 1.4 s more a run and gave codes
further from float32's, docs/speed.md; the forward in bfloat16 where the CPU has it in
hardware, 1.3 s less again), and ``torch.compile`` with freezing lowers the
graph to oneDNN's int8 kernels. The FX mode of ``torch.ao.quantization`` (deprecated) and
ONNX Runtime's ``quantize_static`` (whose export path, TorchScript's, is deprecated too)
ran as fast here; see docs/speed.md.

What changes the codes is in the recipe (``Recipe.calibration``): the sample's size,
seed and fingerprint, and these settings. The calibrated ranges (the observers' states,
a few kB) are kept in ``features.cache_dir`` under a name made of all of them
(``calibration_path``), so a later run, another tap or ``predict`` quantizes exactly as
the extraction did without the training images. A CPU without VNNI still runs int8
(slower, and with activations in 7 bits, ``reduce_range``, which avoids the overflow
of its 16-bit intermediate sums): that is a setting of the codes, recorded with them.
Pooling and storage stay float: the tap's int8 activation is dequantized before pooling.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .cpu import has_native_bfloat16, has_vnni
from .errors import SettingError
from .files import write_atomic
from .forward import OneBatchShape

__all__ = ["INT8", "calibration_sample", "sample_fingerprint", "quantization_settings", "calibration_path",
           "int8_model"]

log = logging.getLogger(__name__)

INT8 = "int8"
CALIBRATION_BATCH = 32
"""Images per calibration batch, fixed, so that the calibration's cost does not depend on
the runtime's batch size (the ranges, a minimum and a maximum, do not depend on it)."""


def quantization_settings() -> dict:
    """How the network is quantized on this machine: part of the codes' recipe."""
    return {"method": "pt2e-x86-inductor", "activations": "uint8 per tensor, min-max",
            "weights": "int8 per channel, min-max", "reduce_range": not has_vnni()}


def calibration_sample(labels: np.ndarray, splits: np.ndarray, images: int, seed: int) -> np.ndarray:
    """Indices of a seeded sample of ``images`` training images, stratified by class, sorted.

    Each class's training images get evenly spaced ranks in [0, 1) in a random order
    (``seed``), and the ``images`` lowest ranks are taken: every class in proportion to its
    size, to one image. All training images when there are fewer.

    Parameters
    ----------
    labels : ndarray of int, (n_samples,)
    splits : ndarray of str, (n_samples,)
    """
    train = np.flatnonzero(np.asarray(splits) == "train")
    if len(train) <= images:
        return train
    rng = np.random.default_rng(seed)
    rank = np.empty(len(train))
    train_labels = np.asarray(labels)[train]
    for label in np.unique(train_labels):
        members = np.flatnonzero(train_labels == label)
        rank[members] = (rng.permutation(len(members)) + rng.random()) / len(members)
    return np.sort(train[np.argsort(rank, kind="stable")[:images]])


def sample_fingerprint(ids: list[str], row_fingerprints: list[str]) -> str:
    """A digest of the sample's images (ids and the fingerprints of their files), in order."""
    text = json.dumps([[sample_id, fingerprint] for sample_id, fingerprint in zip(ids, row_fingerprints)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def calibration_path(cache_dir, backbone: str, key: dict) -> Path:
    """The file of the calibrated ranges for ``key`` (weights, pixels, the recipe's calibration)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{backbone}-int8-calibration-{digest}.pt"


def _pt2e():
    """``(prepare_pt2e, convert_pt2e, the x86 quantizer set to quantization_settings())``, from torchao."""
    try:
        from torchao.quantization.pt2e import MinMaxObserver
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86
    except ImportError as error:
        raise SettingError("features.precision = \"int8\" needs torchao: pip install \"cnn-codes[int8]\" "
                           "(or pip install torchao)") from error
    default = x86.get_default_x86_inductor_quantization_config(reduce_range=quantization_settings()["reduce_range"])
    # the default's activations with min-max observers in place of its histograms (same eps)
    activations = replace(default.input_activation, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2 ** -12))
    config = replace(default, input_activation=activations, output_activation=activations)
    return prepare_pt2e, convert_pt2e, x86.X86InductorQuantizer().set_global(config)


def _observers(prepared: nn.Module) -> dict[str, nn.Module]:
    """The prepared graph's observers, named by the node they watch (the same name in any
    graph that shares the backbone up to that node, whatever the taps after it)."""
    named = {}
    for node in prepared.graph.nodes:
        if node.op == "call_module" and node.target.startswith("activation_post_process"):
            name = node.args[0].name
            while name in named:  # one node watched twice
                name += "+"
            named[name] = prepared.get_submodule(node.target)
    return named


class _Frozen(OneBatchShape):
    """The compiled int8 network, run with inductor's freezing, at one batch shape."""

    compiled = False

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        # freezing (which needs grad off) folds the weights' int8 packing into constants: without it,
        # no faster than float32; compile's options={"freezing": True} did not reach the int8 passes here
        from torch._inductor import config

        with torch.no_grad(), config.patch(freezing=True):
            if self.compiled:
                return super().forward(images)
            started = time.perf_counter()
            outputs = super().forward(images)
            self.compiled = True
            log.info("int8: compiled and ran the first batch in %.1f s", time.perf_counter() - started)
            return outputs


def int8_model(network: nn.Module, path: Path, image_size: int, batch_size: int,
               calibration_inputs: Callable[[], Iterable[torch.Tensor]] | None = None) -> nn.Module:
    """``network`` (a float tap extractor, in eval mode) quantized to int8 and compiled.

    Parameters
    ----------
    network : nn.Module
        Returns ``{tap: activation}``; its BatchNorms folded.
    path : Path
        The calibrated ranges (``calibration_path``): read when they cover this network's
        observers, else calibrated here and written there.
    image_size : int
        Side of the input images (the graph is made for it).
    batch_size : int
        Images per compiled forward.
    calibration_inputs : callable, optional
        Returns the calibration sample's normalised inputs, batches of
        ``(n, 3, H, W)`` float32; None where there are no training images (``predict``),
        and then ``path`` must exist.
    """
    prepare_pt2e, convert_pt2e, quantizer = _pt2e()
    if not has_vnni():
        log.warning("int8: this CPU has no VNNI (avx512_vnni, avx_vnni or AMX): int8 runs with 7-bit activations "
                    "(reduce_range) and may be no faster than float32; see docs/speed.md")
    example = torch.zeros(CALIBRATION_BATCH, 3, image_size, image_size)
    # strict (TorchDynamo) capture: the non-strict one loses the source partitions that the
    # quantizer matches conv + add + relu with ("Input partition has more than one output node" on ResNets)
    exported = torch.export.export(network, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},),
                                   strict=True)
    prepared = prepare_pt2e(exported.module(), quantizer)
    observers = _observers(prepared)
    saved = torch.load(path, weights_only=True) if path.exists() else {}
    if set(observers) <= set(saved):
        for name, observer in observers.items():
            observer.load_state_dict(saved[name])
    elif calibration_inputs is None:
        raise SettingError(f"no int8 calibration for these taps in {path}: run the extract stage of the model's "
                           f"config again (it calibrates on the training images and keeps the ranges there)")
    else:
        # the calibration's forward in bfloat16 where the CPU has it in hardware: 1.65x float32's speed
        # here, ranges within 0.25 % of float32's (a uint8 step is 0.4 %); like another device's float
        # rounding, not part of the codes' name, so the ranges in `path` serve any CPU (predict too)
        started, count = time.perf_counter(), 0
        in_bfloat16 = has_native_bfloat16()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=in_bfloat16):
            for images in calibration_inputs():
                prepared(images)
                count += len(images)
        for name in set(observers) & set(saved):  # a range that made codes stays, whichever CPU calibrates now
            observers[name].load_state_dict(saved[name])
        states = {**saved, **{name: observer.state_dict() for name, observer in observers.items()}}
        write_atomic(path, lambda partial: torch.save(states, partial))
        log.info("int8: %d ranges calibrated on %d images in %.1f s (forward in %s) -> %s", len(observers), count,
                 time.perf_counter() - started, "bfloat16" if in_bfloat16 else "float32", path)
    quantized = convert_pt2e(prepared)
    return _Frozen(torch.compile(quantized), batch_size)
