"""Configuration: one dataclass per TOML section, parsed, its paths resolved and its values built.

Unknown keys and wrong types are refused here, with the key and the nearest valid name for
a typo; a bad value is refused by the value that owns the setting (``features.Recipe``,
``features.Runtime``, ``features.Split``, ``classifiers.Tuning``, ...), which this module
builds from the section and whose message it prefixes with the section, so that a config
and the Python API refuse a value with the same words. ``--set a.b=v`` overrides are parsed
as TOML values. Relative paths resolve against the config file's folder, so a config works
from any working directory.

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
import tomllib
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args, get_origin, get_type_hints

import classifiers
import features
from classifiers import BACKENDS, DEFAULT_MODELS, DEFAULT_PREPROCESSING, MAPS, ZOO, Tuning, check_backend, check_models
from features import (
    BACKBONES,
    MAP,
    NAMED_DATASETS,
    ON_ERROR,
    POOLING_CHOICES,
    VIEW_AREA,
    WEIGHTS_CHOICES,
    AugmentedViews,
    Recipe,
    Runtime,
    SettingError,
    Split,
    check_pooling,
    codes_names,
    did_you_mean,
    is_weights_file,
)
from features.constraints import check_settings, choice_error
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


@contextmanager
def _section(name: str):
    """A value's own refusal (``SettingError``, which names the setting) as a ``ConfigError`` naming the section too."""
    try:
        yield
    except SettingError as error:
        raise ConfigError(f"{name}.{error}") from None


@dataclass
class DataSection:
    """``[data]``: the labelled images. Exactly one of ``root``, ``manifest`` and ``dataset``;
    a downloadable ``dataset`` may also have ``root``, the folder it downloads into."""

    root: str = field(default="", metadata=PATH)
    dataset: str = field(default="", metadata=_choices(("", *NAMED_DATASETS)))
    manifest: str = field(default="", metadata=PATH)
    test_size: float = Split.test_size
    val_size: float = Split.val_size
    seed: int = Split.seed
    on_error: str = field(default="skip", metadata=_choices(ON_ERROR))

    def check(self) -> None:
        sources = [key for key in ("root", "manifest", "dataset") if getattr(self, key)]
        if len(sources) != 1 and sources != ["root", "dataset"]:
            raise ConfigError(
                "[data] needs exactly one of root (an image folder), manifest (a CSV file) and dataset "
                f"({', '.join(NAMED_DATASETS)}; with a dataset, root is the folder it downloads into); "
                f"got {', '.join(f'{key} = {getattr(self, key)!r}' for key in sources) or 'none'}"
            )
        self.split()

    def split(self) -> Split:
        """How a source without splits of its own is split."""
        with _section("data"):
            return Split(**_values(self, Split))


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
    dtype: str = Recipe.dtype
    map_dtype: str = Recipe.map_dtype
    map_budget_gb: float = field(default=Runtime.map_budget_gb, metadata=RUNTIME)
    views: int = 0
    view_area: float = VIEW_AREA
    fast_decode: bool = Recipe.fast_decode
    precision: str = Recipe.precision
    channels_last: bool = field(default=Runtime.channels_last, metadata=RUNTIME)
    compile: bool = field(default=Runtime.compile, metadata=RUNTIME)
    decode_on_device: bool = Recipe.decode_on_device
    calibration_images: int = Recipe.calibration_images
    calibration_seed: int = Recipe.calibration_seed
    cache_dir: str = field(default="cache", metadata=PATH)

    def recipe(self) -> dict:
        """The ``Recipe`` settings of this section, the weights by name and their seed
        (``Recipe.resolve``'s and ``features.extract_backbone``'s keywords)."""
        return {"weights": self.weights, "seed": self.seed, **_values(self, Recipe, "weights", "calibration_sample")}

    def runtime(self, progress: bool = True) -> Runtime:
        """How the network runs in this configuration."""
        with _section("features"):
            return Runtime(**_values(self, Runtime, "progress"), progress=progress)

    def check(self) -> None:
        """What can be checked without torch (taps are module and graph node names too: ``check_names``)."""
        for pooling in self.pooling:
            try:
                check_pooling(pooling)
            except ValueError:
                raise ConfigError(str(choice_error("features.pooling", pooling, POOLING_CHOICES))) from None
        with _section("features"):
            check_settings(Recipe, self.recipe())  # the weights resolve (torchvision) when extract runs
            check_settings(AugmentedViews, {"views": self.views, "seed": self.seed, "view_area": self.view_area})
        self.runtime()

    def taps_of(self, backbone: str) -> list[str]:
        """The configured taps of ``backbone``, or its defaults (registry, or the node before the classifier)."""
        entry = BACKBONES.get(backbone) or features.get_backbone(backbone)
        return self.taps.get(backbone) or list(entry.default_taps)

    def codes_of(self, backbone: str) -> list[str]:
        """The ``"tap/pooling"`` names of ``backbone``'s codes in this configuration."""
        return codes_names(self.taps_of(backbone), self.pooling)

    def check_names(self) -> None:
        """What only torchvision (or timm) knows: models' names, their taps and the layout of
        each (every tap x pooling must be extractable at ``image_size``), weights value names."""
        for backbone in dict.fromkeys([*self.backbones, *self.taps]):
            try:
                entry = features.get_backbone(backbone)
            except ValueError as error:
                if backbone.startswith("timm/"):
                    raise ConfigError(f"features.backbones: {error}") from None
                raise ConfigError(str(choice_error("features.backbones", backbone, features.BACKBONE_CHOICES))) from None
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


@dataclass
class ClassifiersSection:
    """``[classifiers]``: which zoo entries to tune and fit on every (backbone, tap, pooling).

    ``grid`` overrides default grids per model, ``[classifiers.grid.logreg] C = [0.1, 1.0]``.
    The defaults are ``classifiers.Tuning``'s: a notebook's ``classifiers.benchmark`` has the same.
    """

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
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
    fuse_models: int = Tuning.fuse_models
    ensemble: int = Tuning.ensemble

    def tuning(self) -> Tuning:
        """The settings of ``classifiers.Tuning`` in this section (``benchmark``'s ``tuning``)."""
        with _section("classifiers"):
            return Tuning(**_values(self, Tuning))

    def check(self) -> None:
        with _section("classifiers"):
            check_models(self.models)
        self.tuning()
        try:
            check_backend(self.backend, self.scheduler)
        except ValueError as error:
            raise ConfigError(str(error)) from None

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

    def source(self) -> dict:
        """``[data]``'s images as the keywords of ``features.open_source`` (and ``extraction_source``):
        a named dataset downloads into ``data.root``, by default ``<features.cache_dir>/datasets``."""
        data = self.data
        kind = "dataset" if data.dataset else "manifest" if data.manifest else "root"
        return {"source": getattr(data, kind), "kind": kind, "split": data.split(),
                "cache_dir": self.features.cache_dir, "root": data.root}


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
                raise ConfigError(str(choice_error(f"{name}.{key}", item, choices)))
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
