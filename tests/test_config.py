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


def test_resolved_config_round_trips_grid_tables(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\ndataset = "digits"\n[classifiers.grid.logreg]\nC = [0.01, 1.0]\n'
                    '[classifiers.grid.svm-rbf]\nC = [1.0]\ngamma = ["scale"]\n')
    config = load_config(path)
    (tmp_path / "resolved.toml").write_text(dump_config(config))
    assert load_config(tmp_path / "resolved.toml") == config


def test_data_needs_exactly_one_source(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nroot = "photos"\nmanifest = "photos.csv"\n')
    with pytest.raises(ConfigError, match="exactly one of root .*, manifest .* and dataset"):
        load_config(path)


def test_unknown_section_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\ndataset = "digits"\n[feature]\n')
    with pytest.raises(ConfigError, match=r"unknown section \[feature\].*did you mean 'features'"):
        load_config(path)


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.toml")), ids=lambda path: path.name)
def test_every_example_config_is_valid(example):
    config = load_config(example)
    assert Path(config.run.dir).parent == (EXAMPLES / ".." / "runs").resolve()


def test_set_values_are_toml_and_bare_words_are_strings():
    config = load_config(EXAMPLES / "demo.toml", [
        "features.image_size=96", "features.weights=random", 'features.backbones=["vgg16"]',
        "features.taps.vgg16=pool4", "run.dir=elsewhere",
    ])
    assert (config.features.image_size, config.features.weights) == (96, "random")
    assert config.features.backbones == ["vgg16"] and config.features.taps_of("vgg16") == ["pool4"]
    assert config.run.dir == str(EXAMPLES / "elsewhere")  # relative to the config file, like its own paths


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ('[data\nroot = "x"\n', [], r"c\.toml is not valid TOML: .*line 1"),
        ('data = 3\n', [], r"\[data\] must be a table, got 3"),
        ('[data]\nroot = "photos"\n', ["data.root.x=1"], r"--set 'data.root.x=1': data.root is a value, not a table"),
        ('[data]\nroot = "photos"\n', ["data.root"], r"must look like section.key=value"),
        ('[data]\nroot = "photos"\n[run]\ndri = "x"\n', [], r"unknown key 'dri' in \[run\] \(did you mean 'dir'\?\)"),
        ('[data]\nroot = 3\n', [], r"data.root = 3 has the wrong type; expected string"),
        ('[data]\nroot = "p"\n', ["features.num_workers=many"], r"num_workers = 'many' must be a whole number at least 0 or \"auto\""),
        ('[data]\nroot = "p"\n', ["features.num_workers=-1"], r"features.num_workers = -1 must be at least 0"),
        ('[data]\nroot = "p"\n', ["features.num_workers=1.5"], r"expected integer or string"),
        ('[data]\nroot = "p"\n', ["features.fast_decode=yes"], r"features.fast_decode = 'yes' has the wrong type; expected boolean"),
        ('[data]\nroot = "p"\n', ["features.views=-1"], r"features.views = -1 must be at least 0"),
        ('[data]\nroot = "p"\n', ["features.view_area=0"], r"features.view_area = 0.0 must be between 0 and 1 "
                                                            r"\(more than 0, at most 1\)"),
        ('[data]\nroot = "p"\n', ["features.map_budget_gb=0"], r"features.map_budget_gb = 0.0 must be more than 0"),
        ('[data]\nroot = "p"\n', ["features.map_dtype=int8"], r"features.map_dtype = 'int8' is not valid"),
        ('[data]\nroot = "p"\n', ["features.precision=\"float16\""],
         r"features.precision = 'float16' is not valid.*float32, bfloat16, int8"),
        ('[data]\nroot = "p"\n', ["features.calibration_images=0"], r"features.calibration_images = 0 must be at least 1"),
        ('[data]\nroot = "p"\n', ["classifiers.models=finetune"],
         r"classifiers.models has finetune, which trains on whole maps: add \"none\" to features.pooling"),
        ('[data]\nroot = "p"\n', ["features.pooling=none"],
         r"features.pooling = \[\"none\"\] keeps whole maps, which only map heads \(finetune\) train on"),
    ],
)
def test_config_errors_name_the_key_and_what_to_write(tmp_path, text, overrides, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, overrides)


def test_a_config_error_exits_2_with_one_line(cli, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data\n')
    code, out, err = cli("status", "-c", path)
    assert code == 2 and not out
    assert err.startswith("error: config file ") and err.count("\n") == 1


def test_loader_workers_are_a_number_or_auto(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nroot = "p"\n')
    assert load_config(path).features.num_workers == "auto"
    assert load_config(path, ["features.num_workers=3"]).features.num_workers == 3

