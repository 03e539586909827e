"""Training config: defaults <- YAML <- command line; every error names its source and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.dicts import differences
from common.errors import UserError
from train.config import DEFAULT_CONFIG, TrainConfig, load_train_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_defaults_then_file_then_command_line(tmp_path):
    path = write(tmp_path, "epochs: 7\noptim: {lr: 0.5, name: sgd}\n")
    config = load_train_config(path, ["optim.lr=3e-4", "augment.rotation=12"]).config
    assert config.epochs == 7 and config.optim.name == "sgd"  # from the file
    assert config.optim.lr == pytest.approx(3e-4) and config.augment.rotation == 12.0  # command line wins
    assert config.batch_size == TrainConfig().batch_size  # default kept


def test_the_default_config_file_is_valid():
    config = load_train_config(DEFAULT_CONFIG).config
    assert config.network == "digits_cnn" and config.data.dataset == "digits"


def test_config_is_frozen():
    config = load_train_config(None).config
    with pytest.raises(AttributeError):
        config.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("file_text", "overrides", "message"),
    [
        ("optim: {lrr: 1}\n", [], r"exp\.yaml: optim\.lrr: Key 'lrr' not in 'OptimConfig'\. Did you mean: 'lr'\?"),
        ("", ["optim.lrr=1"], r"command line: optim\.lrr: Key 'lrr' not in 'OptimConfig'\. Did you mean: 'lr'\?"),
        ("", ["epoch=3"], r"command line: epoch: Key 'epoch' not in 'TrainConfig'\. Did you mean: 'epochs'\?"),
        ("epochs: many\n", [], r"exp\.yaml: epochs: Value 'many' of type 'str' could not be converted to Integer"),
        ("", ["data.in_memory=perhaps"], r"command line: data\.in_memory: Value 'perhaps' is not a valid bool"),
        ("", ["optim.name=adam"], r"optim\.name: 'adam' is not one of \['sgd', 'adamw'\]"),
        ("", ["checkpoint.monitor=val/f1"], r"checkpoint\.monitor: 'val/f1' is not one of"),
        ("", ["epochs=0"], r"epochs: must be >= 1, got 0"),
        ("", ["optim.lr=-1"], r"optim\.lr: must be positive"),
        ("", ["augment.hflip=2"], r"augment\.hflip: a probability in \[0, 1\]"),
        ("", ["epochs"], r"command line: 'epochs' is not a key=value override"),
        ("- a\n- b\n", [], r"exp\.yaml: expected a mapping"),
    ],
)
def test_errors_name_source_and_key(tmp_path, file_text, overrides, message):
    with pytest.raises(UserError, match=message):
        load_train_config(write(tmp_path, file_text), overrides)


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match=r"nope\.yaml: training config not found"):
        load_train_config(tmp_path / "nope.yaml")


def test_dev_uses_the_dev_split_for_both():
    config = load_train_config(None).config.for_dev()
    assert config.data.train_split == "dev" and config.data.val_split == "dev"


def test_config_differences_lists_dotted_keys():
    a = load_train_config(None).config.to_dict()
    b = load_train_config(None, ["epochs=99", "optim.lr=0.1"]).config.to_dict()
    assert differences(a, b) == {"epochs": (30, 99), "optim.lr": (0.001, 0.1)}
