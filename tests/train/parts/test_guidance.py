"""What training tells a user before it runs: the photo recipe, overrides anywhere, durations as a person says them."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import UserError
from common.paths import PROJECT_ROOT
from train.__main__ import main
from train.config import load_train_config
from train.watch.console import describe_duration

PHOTOS = PROJECT_ROOT / "train" / "configs" / "photos.yaml"


def test_the_photo_recipe_flips_never_rotates_and_asks_for_network_and_data():
    with pytest.raises(UserError, match=r"photos.yaml: network, data.dataset: this config leaves the value to the "
                                        r"command line; add network=<value> data.dataset=<value>"):
        load_train_config(PHOTOS)
    with pytest.raises(UserError, match=r"photos.yaml: data.dataset: "):
        load_train_config(PHOTOS, ["network=flowers_cnn"])
    config = load_train_config(PHOTOS, ["network=flowers_cnn", "data.dataset=flowers"]).config
    assert config.network == "flowers_cnn" and config.data.dataset == "flowers"
    assert config.augment.hflip == 0.5 and config.augment.rotation == 0
    digits = load_train_config().config
    assert digits.augment.hflip == 0 and digits.augment.rotation > 0


def test_train_accepts_overrides_before_and_after_flags(capsys, tiny_network):
    assert main([f"network={tiny_network}", "--dev", "epochs=1", "--print-config", "optim.lr=0.01"]) == 0
    printed = capsys.readouterr().out
    assert f"network: {tiny_network}" in printed and "epochs: 1" in printed and "lr: 0.01" in printed
    assert "train_split: dev" in printed  # --dev, given between the overrides, applied too


@pytest.mark.parametrize(("seconds", "text"), [(42.4, "42 s"), (95, "2 min"), (3000, "50 min"), (9000, "2.5 h")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert describe_duration(seconds) == text


def test_the_recipe_file_is_the_one_documented():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "--config train/configs/photos.yaml" in readme and Path(PHOTOS).is_file()
