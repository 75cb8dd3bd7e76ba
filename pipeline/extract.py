"""The extract stage: images -> CNN codes of every configured backbone, tap and pooling,
cached in the feature stores; ``features.json`` in the run folder names them.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import torch

from features import (
    FeatureStore,
    Shard,
    distributed_rank,
    extract_backbone,
    extraction_source,
    imagenet_checkpoint,
    join_shard_stores,
    resolve_device,
)
from features.files import write_json

from .config import Config, ConfigError
from .runfolder import run_folder

__all__ = ["extract"]

log = logging.getLogger(__name__)


def extract(config: Config, progress: bool = True) -> None:
    """CNN codes of every configured backbone, tap and pooling, computed once and cached.

    Under ``torchrun`` each rank extracts its shard of the images (``features.Shard``) and
    rank 0 joins the shards into the store once all are done (``join_shard_stores``).
    """
    run_dir = run_folder(config)
    features = config.features
    source = extraction_source(**config.source(), views=features.views, seed=features.seed,
                               view_area=features.view_area)
    images = source.source if features.views else source
    log.info("extract: %s, %d images, %d classes", source.name, len(images), len(source.classes))
    if features.views:
        log.info("extract: %d augmented views of each training image: %d rows", features.views, len(source))
    rank, world = distributed_rank()
    runtime = features.runtime(progress)
    if world > 1:
        if features.precision == "int8":  # each rank would calibrate on its own shard's images
            raise ConfigError("features.precision = \"int8\" does not run under torchrun (each rank would "
                              "calibrate on other images): extract in one process, or use \"bfloat16\" on GPUs")
        runtime = dataclasses.replace(runtime, device=_join_process_group(resolve_device(runtime.device)))
        log.info("extract: rank %d of %d, %d images on %s", rank, world, len(Shard(source, rank, world)),
                 runtime.device)
    stores = {}
    for backbone in features.backbones:
        done = extract_backbone(Shard(source, rank, world) if world > 1 else source, backbone,
                                taps=features.taps_of(backbone), poolings=features.pooling, cache_dir=features.cache_dir,
                                runtime=runtime, on_error=config.data.on_error, **features.recipe())
        weights = done.recipe.weights
        codes = ", ".join(map("/".join, done.computed)) or "nothing new"
        speed = (f" for {done.images} images in {done.seconds:.1f} s ({done.images / done.seconds:.0f} images/s)"
                 if done.images else "")
        log.info("extract: %s [%s] computed %s%s, %d cached -> %s",
                 backbone, weights.identity, codes, speed, len(done.cached), done.path)
        skipped = done.skipped
        if world > 1:
            torch.distributed.barrier()  # every rank's shard of this backbone is written
            if rank:
                continue
            done.path = join_shard_stores(source, done.recipe, cache_dir=features.cache_dir, world=world)
            with FeatureStore(done.path) as store:
                skipped = store.skipped
            log.info("extract: %s: %d shards joined -> %s", backbone, world, done.path)
        stores[backbone] = {
            "store": str(done.path),
            "weights": weights.identity,
            "pretrained": weights.is_pretrained,
            "fell_back": weights.fell_back,
            "codes": features.codes_of(backbone),
            "skipped": [{"id": sample_id, "reason": reason} for sample_id, reason in skipped],
        }
        if weights.fell_back:  # the file that `auto` waits for: once it is there, extract is stale
            stores[backbone]["imagenet_checkpoint"] = str(imagenet_checkpoint(backbone))
    if rank == 0:
        write_json(run_dir / "features.json", stores)


def _join_process_group(device: str) -> str:
    """Join ``torchrun``'s process group (NCCL between GPUs, gloo between CPUs); this rank's device.

    Each rank takes the GPU of its local rank, so a node must have a GPU for each process
    that ``torchrun`` starts there; otherwise the rank stops with a message saying so
    (CUDA's own error, "invalid device ordinal", names neither the cause nor the fix)."""
    if device == "cuda":
        local_rank, gpus = int(os.environ.get("LOCAL_RANK", 0)), torch.cuda.device_count()
        if local_rank >= gpus:
            fix = f"run torchrun --nproc-per-node {gpus}" if gpus else "this node has none"
            raise ConfigError(f"torchrun started local rank {local_rank}, which needs GPU {local_rank}: {fix}, "
                              f"or set features.device = \"cpu\"")
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)  # NCCL then knows this rank's GPU instead of guessing it
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return device
