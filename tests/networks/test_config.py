"""The shared network config: typed, validated with key paths, hashed stably."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import UserError
from common.paths import shared_configs_dir
from networks.config import NetworkConfig, load_network_config

SHARED = sorted(p.stem for p in (shared_configs_dir() / "networks").glob("*.yaml"))

VALID = """\
version: 1
arch: {name: small_cnn, params: {channels: [8, 16]}}
num_classes: 3
input: {color_mode: RGB, height: 12, width: 10, interpolation: bicubic, mean: [0.1, 0.2, 0.3], std: [0.4, 0.5, 0.6]}
"""


def write(tmp_path: Path, text: str, name: str = "mine") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", SHARED)
def test_shared_configs_load(name):
    config = load_network_config(name)
    assert config.name == name and config.num_classes == 10
    assert config.input.shape == ((1, 32, 32) if config.arch.name == "timm" else (1, 16, 16))
    assert len(config.hash) == 64


def test_loaded_config_is_frozen_and_typed(tmp_path):
    config = load_network_config(write(tmp_path, VALID))
    assert config.input.mean == (0.1, 0.2, 0.3) and config.input.channels == 3
    assert config.arch.params == {"channels": [8, 16]}
    with pytest.raises(AttributeError):
        config.num_classes = 4  # type: ignore[misc]


def test_hash_ignores_formatting_but_not_values(tmp_path):
    base = load_network_config(write(tmp_path, VALID)).hash
    reformatted = "# a comment\n" + VALID.replace("version: 1\n", "") + "version: 1\n"
    assert load_network_config(write(tmp_path, reformatted)).hash == base
    assert load_network_config(write(tmp_path, VALID.replace("height: 12", "height: 13"))).hash != base
    assert load_network_config(write(tmp_path, VALID.replace("[8, 16]", "[8, 32]"))).hash != base


def test_round_trip_through_a_dict_keeps_the_hash(tmp_path):
    config = load_network_config(write(tmp_path, VALID))
    again = NetworkConfig.from_dict(config.to_dict(), source="checkpoint")
    assert again == config and again.hash == config.hash


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("height: 12", "heigth: 12"), r"mine\.yaml: input\.heigth: Key 'heigth' not in 'InputContract'\. Did you mean: 'height'\?"),
        (("num_classes: 3", "num_classes: three"), r"mine\.yaml: num_classes: Value 'three' .* Integer"),
        (("num_classes: 3", "num_classes: 0"), r"mine\.yaml: num_classes: must be at least 1"),
        (("num_classes: 3\n", ""), r"mine\.yaml: num_classes: .*missing mandatory value"),
        (("version: 1", "version: 2"), r"mine\.yaml: version: this code reads network config version 1, got 2"),
        (("mean: [0.1, 0.2, 0.3]", "mean: [0.1]"), r"mine\.yaml: input\.mean: color_mode RGB has 3 channel"),
        (("bicubic", "cubic"), r"mine\.yaml: input\.interpolation: 'cubic' is not one of"),
        (("arch:", "archi:"), r"mine\.yaml: archi: Key 'archi' not in 'NetworkConfig'\. Did you mean: 'arch'\?"),
    ],
)
def test_validation_errors_name_the_file_and_key(tmp_path, change, message):
    with pytest.raises(UserError, match=message):
        load_network_config(write(tmp_path, VALID.replace(*change)))


def test_name_must_match_the_file(tmp_path):
    with pytest.raises(UserError, match=r"name: 'other' differs from the file name 'mine'"):
        load_network_config(write(tmp_path, "name: other\n" + VALID))


def test_missing_file_lists_the_known_configs():
    with pytest.raises(UserError, match=r"network config not found; known configs: \[.*'digits_cnn'"):
        load_network_config("no_such_network")


def test_invalid_yaml(tmp_path):
    with pytest.raises(UserError, match=r"mine\.yaml: not a valid YAML mapping"):
        load_network_config(write(tmp_path, "arch: [unclosed\n"))
    with pytest.raises(UserError, match=r"mine\.yaml: expected a mapping"):
        load_network_config(write(tmp_path, "- a list\n"))
