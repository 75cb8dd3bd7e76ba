"""Configuration: one dataclass per TOML section, validated where it enters.

Unknown keys, wrong types and bad values are refused with the key, the value and the
valid choices (and the nearest valid name for a typo), so that a mistake in a config
costs one short message and not a traceback from deep inside torch. ``--set a.b=v``
overrides are parsed as TOML values. Relative paths resolve against the config file's
folder, so a config works from any working directory.

Loading a config imports neither torch, torchvision nor scikit-learn (``status`` answers
in a fraction of a second). The few names that only they know (a torchvision model
outside the registry and its taps, a weights value such as ``IMAGENET1K_V2``, a grid's
parameter names) are checked by ``check_names``, which runs before any stage does.

Settings marked ``RUNTIME`` say how and where the work runs (device, batch size,
workers, memory layout, compilation, the grid searches' joblib backend), not what it
computes: ``results_of`` leaves them out, so changing them makes no stage stale.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args, get_origin, get_type_hints

import classifiers
import features
from classifiers import (
    BACKENDS,
    DEFAULT_MODELS,
    DEFAULT_PREPROCESSING,
    MAPS,
    ZOO,
    Tuning,
    check_backend,
    check_preprocessing,
)
from features import (
    BACKBONES,
    Recipe,
    Runtime,
    DTYPES,
    MAP,
    NAMED_DATASETS,
    ON_ERROR,
    POOLING_CHOICES,
    PRECISIONS,
    WEIGHTS_CHOICES,
    check_pooling,
    choices_hint,
    did_you_mean,
    is_weights_file,
)
from features.errors import SettingError

__all__ = ["ConfigError", "Config", "load_config", "check_names", "results_of", "dump_config"]


class ConfigError(SettingError):
    """The configuration cannot be used; the message says which key and what to write."""


def _choices(values):
    """Field metadata: each value (each item, for lists) must be one of ``values``."""
    return {"choices": tuple(values)}


PATH = {"path": True}
"""Field metadata: a path, resolved against the config file's folder."""

RUNTIME = {"runtime": True}
"""Field metadata: how the work runs, not what it computes (see ``results_of``)."""


@dataclass
class DataSection:
    """``[data]``: the labelled images. Exactly one of ``root``, ``manifest`` and ``dataset``;
    a downloadable ``dataset`` may also have ``root``, the folder it downloads into."""

    root: str = field(default="", metadata=PATH)
    dataset: str = field(default="", metadata=_choices(("", *NAMED_DATASETS)))
    manifest: str = field(default="", metadata=PATH)
    test_size: float = 0.25
    val_size: float = 0.0
    seed: int = 0
    on_error: str = field(default="skip", metadata=_choices(ON_ERROR))

    def check(self) -> None:
        sources = [key for key in ("root", "manifest", "dataset") if getattr(self, key)]
        if len(sources) != 1 and sources != ["root", "dataset"]:
            raise ConfigError(
                "[data] needs exactly one of root (an image folder), manifest (a CSV file) and dataset "
                f"({', '.join(NAMED_DATASETS)}; with a dataset, root is the folder it downloads into); "
                f"got {', '.join(f'{key} = {getattr(self, key)!r}' for key in sources) or 'none'}"
            )
        if not 0 < self.test_size < 1:
            raise ConfigError(f"data.test_size = {self.test_size} must be between 0 and 1 (e.g. 0.25)")
        if not 0 <= self.val_size < 1 - self.test_size:
            raise ConfigError(f"data.val_size = {self.val_size} must be at least 0 and less than "
                              f"1 - data.test_size (e.g. 0.1)")


def _values(section, kind, *besides: str) -> dict:
    """The section's values of the fields of dataclass ``kind`` (``Recipe``, ``Runtime``,
    ``Tuning``), but ``besides``: the section has each under the same name."""
    return {item.name: getattr(section, item.name) for item in dataclasses.fields(kind) if item.name not in besides}


@dataclass
class FeaturesSection:
    """``[features]``: which backbones, weights, taps and poolings make the codes.

    The defaults of what decides the codes are ``features.Recipe``'s, those of how the
    network runs ``features.Runtime``'s: a notebook's ``features.extract`` has the same.
    """

    backbones: list[str] = field(default_factory=lambda: ["vgg16", "resnet50"])
    weights: str = field(default="imagenet", metadata={"path": is_weights_file})
    taps: dict[str, list[str]] = field(default_factory=dict)
    pooling: list[str] = field(default_factory=lambda: ["avg"])
    image_size: int = Recipe.image_size
    batch_size: int = field(default=Runtime.batch_size, metadata=RUNTIME)
    num_workers: int | str = field(default=Runtime.num_workers, metadata=RUNTIME)
    device: str = field(default=Runtime.device, metadata=RUNTIME)
    seed: int = 0
    dtype: str = field(default=Recipe.dtype, metadata=_choices(DTYPES))
    map_dtype: str = field(default=Recipe.map_dtype, metadata=_choices(DTYPES))
    map_budget_gb: float = field(default=Runtime.map_budget_gb, metadata=RUNTIME)
    views: int = 0
    fast_decode: bool = Recipe.fast_decode
    precision: str = field(default=Recipe.precision, metadata=_choices(PRECISIONS))
    channels_last: bool = field(default=Runtime.channels_last, metadata=RUNTIME)
    compile: bool = field(default=Runtime.compile, metadata=RUNTIME)
    decode_on_device: bool = Recipe.decode_on_device
    calibration_images: int = Recipe.calibration_images
    calibration_seed: int = Recipe.calibration_seed
    cache_dir: str = field(default="cache", metadata=PATH)

    def recipe(self, backbone: str) -> Recipe:
        """What decides ``backbone``'s codes in this configuration (resolves the weights:
        downloads torchvision's when needed)."""
        return Recipe.resolve(backbone, self.weights, self.seed,
                              **_values(self, Recipe, "weights", "calibration_sample"))

    def runtime(self, progress: bool = True) -> Runtime:
        """How the network runs in this configuration."""
        return Runtime(**_values(self, Runtime, "progress"), progress=progress)

    def check(self) -> None:
        """What can be checked without torch (taps are module and graph node names too: ``check_names``)."""
        for pooling in self.pooling:
            try:
                check_pooling(pooling)
            except ValueError:
                raise ConfigError(_bad_choice("features.pooling", pooling, POOLING_CHOICES)) from None
        if self.num_workers != "auto" and not isinstance(self.num_workers, int):
            raise ConfigError(f"features.num_workers = {self.num_workers!r} must be a whole number or \"auto\"")
        for key, minimum in (("image_size", 32), ("batch_size", 1), ("num_workers", 0), ("views", 0),
                             ("calibration_images", 1)):
            if getattr(self, key) != "auto" and getattr(self, key) < minimum:
                raise ConfigError(f"features.{key} = {getattr(self, key)} must be at least {minimum}")
        if self.map_budget_gb <= 0:
            raise ConfigError(f"features.map_budget_gb = {self.map_budget_gb} must be more than 0 (gigabytes)")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ConfigError(f"features.device = {self.device!r} is not valid; use auto, cpu, cuda, cuda:N or mps")

    def taps_of(self, backbone: str) -> list[str]:
        """The configured taps of ``backbone``, or its defaults (registry, or the node before the classifier)."""
        entry = BACKBONES.get(backbone) or features.get_backbone(backbone)
        return self.taps.get(backbone) or list(entry.default_taps)

    def check_names(self) -> None:
        """What only torchvision (or timm) knows: models' names, their taps and the layout of
        each (every tap x pooling must be extractable at ``image_size``), weights value names."""
        for backbone in dict.fromkeys([*self.backbones, *self.taps]):
            try:
                entry = features.get_backbone(backbone)
            except ValueError as error:
                if backbone.startswith("timm/"):
                    raise ConfigError(f"features.backbones: {error}") from None
                raise ConfigError(_bad_choice("features.backbones", backbone, features.BACKBONE_CHOICES)) from None
            _check_taps(backbone, self.taps.get(backbone, []), entry)
            try:
                features.list_taps(backbone, self.image_size, [])  # a size the model cannot take
            except ValueError as error:
                raise ConfigError(f"features.image_size: {error}") from None
            try:
                features.check_taps(backbone, self.taps_of(backbone), self.pooling, self.image_size)
            except ValueError as error:
                raise ConfigError(f"features.taps.{backbone} (or its default taps) with features.pooling: "
                                  f"{error}") from None
        if self.weights in WEIGHTS_CHOICES or is_weights_file(self.weights):
            return
        for backbone in self.backbones:
            try:
                features.check_weights_name(backbone, self.weights)
            except ValueError as error:
                raise ConfigError(f"features.weights: {error}") from None


def _check_taps(backbone: str, taps: list[str], entry) -> None:
    for tap in taps:
        if tap not in entry.taps:
            # suggest among every name that works, list the useful ones
            raise ConfigError(f"features.taps.{backbone} = {tap!r} is not valid{did_you_mean(tap, entry.taps)}; "
                              f"useful taps: {choices_hint(entry.curated, f'python -m pipeline taps {backbone}')}; "
                              f"or any module or graph node name (python -m pipeline taps {backbone} --all)")


@dataclass
class ClassifiersSection:
    """``[classifiers]``: which zoo entries to tune and fit on every (backbone, tap, pooling).

    ``grid`` overrides default grids per model, ``[classifiers.grid.logreg] C = [0.1, 1.0]``.
    The defaults are ``classifiers.Tuning``'s: a notebook's ``classifiers.benchmark`` has the same.
    """

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS), metadata=_choices(ZOO))
    preprocessing: list[str] = field(default_factory=lambda: list(DEFAULT_PREPROCESSING))
    cv_folds: int = Tuning.cv_folds
    n_jobs: int = field(default=Tuning.n_jobs, metadata=RUNTIME)
    backend: str = field(default="loky", metadata={**_choices(BACKENDS), **RUNTIME})
    scheduler: str = field(default="", metadata=RUNTIME)
    memory_budget_gb: float = Tuning.memory_budget_gb
    chunk_epochs: int = Tuning.chunk_epochs
    tune_rows: int = Tuning.tune_rows
    holdout_rows: int = Tuning.holdout_rows
    head_folds: int = Tuning.head_folds
    seed: int = Tuning.seed
    grid: dict[str, object] = field(default_factory=dict)
    fuse: list[str | list[str]] = field(default_factory=lambda: list(classifiers.DEFAULT_FUSE))
    fuse_width: int = 0
    ensemble: int = Tuning.ensemble

    def tuning(self) -> dict:
        """The settings of ``classifiers.Tuning`` in this section, by name (``benchmark``'s keywords)."""
        return _values(self, Tuning)

    def check(self) -> None:
        if not self.models:
            raise ConfigError(f"classifiers.models is empty; name at least one of {', '.join(ZOO)}")
        try:
            check_preprocessing(self.preprocessing)
        except ValueError as error:
            raise ConfigError(f"classifiers.preprocessing = {self.preprocessing}: {error}") from None
        if self.cv_folds < 2:
            raise ConfigError(f"classifiers.cv_folds = {self.cv_folds} must be at least 2")
        if self.memory_budget_gb <= 0:
            raise ConfigError(f"classifiers.memory_budget_gb = {self.memory_budget_gb} must be more than 0 (gigabytes)")
        if self.chunk_epochs < 1:
            raise ConfigError(f"classifiers.chunk_epochs = {self.chunk_epochs} must be at least 1")
        if self.tune_rows < 0:
            raise ConfigError(f"classifiers.tune_rows = {self.tune_rows} must be at least 0 (0: search on every row)")
        if self.holdout_rows < 0:
            raise ConfigError(f"classifiers.holdout_rows = {self.holdout_rows} must be at least 0 (0: always k-fold "
                              f"cross-validation)")
        if self.head_folds < 1:
            raise ConfigError(f"classifiers.head_folds = {self.head_folds} must be at least 1 (1: scored like the other "
                              f"classifiers; 2 or more: always k-fold cross-validation)")
        try:
            classifiers.check_fuse(self.fuse)
        except ValueError as error:
            raise ConfigError(f"classifiers.fuse: {error}") from None
        for key in ("fuse_width", "ensemble"):
            if getattr(self, key) < 0:
                raise ConfigError(f"classifiers.{key} = {getattr(self, key)} must be at least 0 (0: "
                                  f"{'parts kept whole' if key == 'fuse_width' else 'no ensemble'})")
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ConfigError(f"classifiers.n_jobs = {self.n_jobs} must be -1 (all cores) or at least 1")
        try:
            check_backend(self.backend, self.scheduler)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        for model, table in self.grid.items():
            if model not in ZOO:
                raise ConfigError(_bad_choice("classifiers.grid", model, ZOO))
            if not isinstance(table, dict):
                raise ConfigError(f"classifiers.grid.{model} = {table!r} must be a table of parameter = [values], "
                                  f"e.g. [classifiers.grid.{model}] followed by C = [0.1, 1.0]")

    def check_names(self) -> None:
        """What only the estimators know: the parameter names of the grids."""
        for model, table in self.grid.items():
            try:
                classifiers.check_grid(model, table)
            except ValueError as error:
                raise ConfigError(f"classifiers.grid.{model}: {error}") from None


@dataclass
class RunSection:
    """``[run]``: where fitted models, results and the report go."""

    dir: str = field(default="runs/default", metadata=PATH)


@dataclass
class Config:
    """The whole configuration, one attribute per TOML section."""

    data: DataSection = field(default_factory=DataSection)
    features: FeaturesSection = field(default_factory=FeaturesSection)
    classifiers: ClassifiersSection = field(default_factory=ClassifiersSection)
    run: RunSection = field(default_factory=RunSection)


def check_names(config: Config) -> None:
    """Check what ``load_config`` leaves to the libraries (see the module's docstring).

    It imports torchvision or scikit-learn only when the config names something that
    needs them; call it before any long work.
    """
    config.features.check_names()
    config.classifiers.check_names()


def results_of(section) -> dict:
    """A config section's settings that change results (all but those marked ``RUNTIME``)."""
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section) if not f.metadata.get("runtime")}


def _bad_choice(key: str, value, valid, where: str = "") -> str:
    valid = [choice for choice in valid if choice]
    return f"{key} = {value!r} is not valid{did_you_mean(value, valid)}; valid choices: {choices_hint(valid, where)}"


def _type_name(hint) -> str:
    origin = get_origin(hint)
    if origin is types.UnionType:
        return " or ".join(map(_type_name, get_args(hint)))
    if origin is list:
        return f"a list of {_type_name(get_args(hint)[0])}s"
    if origin is dict:
        return f"a table of {_type_name(get_args(hint)[1])}"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}[hint]


def _coerce(key: str, value, hint):
    """``value`` as type ``hint``, or a ConfigError; a lone string is a one-item list."""
    origin = get_origin(hint)
    if origin is types.UnionType:  # e.g. int | str: a number of workers, or "auto"
        for option in get_args(hint):
            try:
                return _coerce(key, value, option)
            except ConfigError:
                pass
    elif origin is list:
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list):
            return [_coerce(key, item, get_args(hint)[0]) for item in items]
    elif origin is dict:
        if isinstance(value, dict):
            return {name: _coerce(f"{key}.{name}", item, get_args(hint)[1]) for name, item in value.items()}
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{key} = {value!r} has the wrong type; expected {_type_name(hint)}")


def _build_section(name: str, cls, table: dict, base: Path):
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    values = {}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(
                f"unknown key {key!r} in [{name}]{did_you_mean(key, fields)}; valid keys: {', '.join(fields)}"
            )
        value = _coerce(f"{name}.{key}", value, hints[key])
        choices = fields[key].metadata.get("choices")
        for item in value if isinstance(value, list) else [value]:
            if choices is not None and item not in choices:
                raise ConfigError(_bad_choice(f"{name}.{key}", item, choices))
        values[key] = value
    section = cls(**values)
    for key, f in fields.items():  # paths, given or default, resolve against the config's folder
        is_path = f.metadata.get("path", False)  # True, or a test of the value (weights may name a file)
        if getattr(section, key) and (is_path is True or callable(is_path) and is_path(getattr(section, key))):
            setattr(section, key, str((base / getattr(section, key)).resolve()))
    if hasattr(section, "check"):
        section.check()
    return section


def _parse_override(text: str) -> tuple[list[str], object]:
    """``section.key=value`` -> (["section", "key"], value); values are TOML, else a string."""
    path, sep, raw = text.partition("=")
    parts = path.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {text!r} must look like section.key=value, e.g. features.weights=random")
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word such as random or ./photos
    return parts, value


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read, override and validate a config file.

    Parameters
    ----------
    path : path to a TOML file
    overrides : list of ``section.key=value`` strings (the command line's ``--set``)
    """
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; pass -c with a TOML file such as examples/demo.toml")
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}")
    for override in overrides:
        parts, value = _parse_override(override)
        target = table
        for depth, part in enumerate(parts[:-1], 1):
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {override!r}: {'.'.join(parts[:depth])} is a value, not a table")
        target[parts[-1]] = value
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    hints = get_type_hints(Config)
    for name in table:
        if name not in sections:
            raise ConfigError(f"unknown section [{name}] in {path}{did_you_mean(name, sections)}; valid sections: {', '.join(sections)}")
    base = path.resolve().parent
    config = Config(**{name: _build_section(name, hints[name], table.get(name, {}), base) for name in sections})
    _check_maps(config)
    return config


def _check_maps(config: Config) -> None:
    """Whole maps (pooling ``none``) and the heads that train on them come together."""
    map_heads = [name for name in config.classifiers.models if ZOO[name].takes == MAPS]
    pooling = config.features.pooling
    if map_heads and MAP not in pooling:
        raise ConfigError(f"classifiers.models has {', '.join(map_heads)}, which trains on whole maps: add "
                          f"\"{MAP}\" to features.pooling (e.g. pooling = [\"avg\", \"{MAP}\"])")
    if set(pooling) == {MAP} and len(map_heads) < len(config.classifiers.models):
        raise ConfigError(f"features.pooling = [\"{MAP}\"] keeps whole maps, which only map heads "
                          f"({', '.join(name for name in ZOO if ZOO[name].takes == MAPS)}) train on; add a "
                          f"pooling such as \"avg\" for the other classifiers")


def dump_config(config: Config) -> str:
    """The resolved config as TOML, so a run folder records exactly what produced it.

    JSON strings, numbers and lists are valid TOML values; dicts (per-backbone taps,
    per-model grids) become [section.key] tables, nested as deep as they go.
    """
    lines = []
    for section in dataclasses.fields(config):
        _dump_table(section.name, dataclasses.asdict(getattr(config, section.name)), lines)
    return "\n".join(lines)


def _dump_table(name: str, values: dict, lines: list[str]) -> None:
    lines.append(f"[{name}]")
    tables = {key: value for key, value in values.items() if isinstance(value, dict)}
    lines += [f"{json.dumps(key)} = {json.dumps(value)}" for key, value in values.items() if key not in tables]
    lines.append("")
    for key, table in tables.items():
        _dump_table(f"{name}.{json.dumps(key)}", table, lines)
