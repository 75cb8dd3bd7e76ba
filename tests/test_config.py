"""Configuration files: the shipped examples load, paths resolve, the resolved config round-trips."""

from pathlib import Path

import pytest

from pipeline.config import ConfigError, dump_config, load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_demo_config_loads_with_paths_beside_the_config():
    config = load_config(EXAMPLES / "demo.toml")
    assert config.data.dataset == "digits"
    assert config.features.weights == "auto"
    assert config.features.taps_of("vgg16") == ["pool3", "pool5"]
    assert Path(config.features.cache_dir) == (EXAMPLES / ".." / "cache").resolve()


def test_defaults_and_a_lone_string_for_a_list(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nroot = "photos"\n[features]\npooling = "max"\n')
    config = load_config(path)
    assert config.features.pooling == ["max"]
    assert config.features.weights == "imagenet"
    assert config.features.taps_of("resnet50") == ["layer2", "layer3", "pool"]
    assert config.data.root == str(tmp_path / "photos")
    assert config.run.dir == str(tmp_path / "runs" / "default")


def test_resolved_config_round_trips(tmp_path):
    config = load_config(EXAMPLES / "demo.toml", ["features.image_size=96", "features.weights=random"])
    (tmp_path / "resolved.toml").write_text(dump_config(config))
    assert load_config(tmp_path / "resolved.toml") == config


def test_data_needs_exactly_one_source(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nroot = "photos"\ndataset = "digits"\n')
    with pytest.raises(ConfigError, match="exactly one of root .* and dataset"):
        load_config(path)


def test_unknown_section_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\ndataset = "digits"\n[feature]\n')
    with pytest.raises(ConfigError, match=r"unknown section \[feature\].*did you mean 'features'"):
        load_config(path)
