"""The frozen layers behind a map head: the weights they were made with, and what rerunning them costs.

A map head (``finetune``) trains the backbone's layers after its tap on cached maps, so it
rebuilds those layers with the weights the store's codes were made with. The store records
them (``weights_setting`` and ``weights_seed``, from ``features.Recipe.store_attrs``);
stores made before those attributes existed are read from their ``weights`` identity
instead (``weights_of_store``). ``recompute_cost`` times the frozen layers up to the tap,
for the report's comparison with fine-tuning that reruns them in every epoch.
"""

from __future__ import annotations

import re

from features import MAP, FeatureStore, Recipe, forward_seconds, resolve_weights, spec_of_store

__all__ = ["weights_of_store", "map_head_settings", "recompute_cost"]


def weights_of_store(attrs: dict) -> tuple[str, int]:
    """The ``weights`` value and seed that remake a store's weights (``resolve_weights``).

    From the store's ``weights_setting`` and ``weights_seed``; a store written before they
    were recorded is read from its ``weights`` identity (``random(seed=N)``,
    ``VGG16_Weights.IMAGENET1K_V1``) or its ``weights_file``, as before (a file with seed 0).
    """
    if attrs.get("weights_setting"):
        return attrs["weights_setting"], int(attrs.get("weights_seed", 0))
    if attrs.get("weights_file"):
        return attrs["weights_file"], 0
    random = re.fullmatch(r"random\(seed=(\d+)\)", attrs["weights"])
    if random:
        return "random", int(random.group(1))
    return attrs["weights"].rpartition(".")[2], 0  # VGG16_Weights.IMAGENET1K_V1 -> IMAGENET1K_V1


def map_head_settings(store: FeatureStore, tap: str) -> dict:
    """What a map head (``finetune``) is built from: the backbone's layers after ``tap``,
    with the weights the store's codes were made with."""
    weights, seed = weights_of_store(store.attrs)
    return {"backbone": store.attrs["backbone"], "tap": tap, "weights": weights, "weights_seed": seed}


def recompute_cost(store: FeatureStore, tap: str, row: dict) -> dict:
    """What the map head's training would have cost had it run the frozen layers up to ``tap``
    on every fit row in every epoch, as fine-tuning without a cache does: their forward
    time per image, measured here, x epochs x rows (``frozen_ms_per_image``, ``recompute_seconds``)."""
    head = map_head_settings(store, tap)
    spec = spec_of_store(store.attrs, tap, MAP)
    recipe = Recipe.from_spec(spec, resolve_weights(head["backbone"], head["weights"], head["weights_seed"]))
    per_image = forward_seconds(recipe, [tap])
    rows_per_epoch = row["n_train"] + row["n_val"]
    return {"frozen_ms_per_image": round(1000 * per_image, 3),
            "recompute_seconds": round(per_image * row["epochs"] * rows_per_epoch, 1)}
