"""What training tells a user before and while it runs: the photo recipe, overrides anywhere, data check, time."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from common.errors import UserError
from common.paths import PROJECT_ROOT
from train.__main__ import main
from train.config import load_train_config
from train.run import RunOptions, train
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


@pytest.mark.slow
def test_the_run_log_has_the_data_check_and_the_time_estimate(fast_config):
    result = train(fast_config("epochs=3"), RunOptions(progress=False, device="cpu", dev=True))
    log = (result.run_dir / "log.txt").read_text()
    assert "data check (headers of 100 of 100 dev images): no shortcut" in log
    (estimate,) = [line for line in log.splitlines() if "time estimate:" in line]
    assert "per epoch (epoch 1, with validation): about" in estimate and "for 3 epochs" in estimate
    assert log.index("epoch 1/3") < log.index("time estimate:") < log.index("epoch 2/3")


@pytest.mark.slow
def test_a_shortcut_is_named_at_the_start_of_training(fast_config, digits_root, tmp_path):
    copy = tmp_path / "digits"
    lines = []
    for line in (digits_root / "lists" / "dev.txt").read_text().splitlines():
        path, label = line.rsplit(maxsplit=1) if not line.startswith("#") else (None, None)
        if path is None:
            continue
        target = copy / (path.replace(".png", ".jpg") if label == "3" else path)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(digits_root / path).save(target)  # class 3 becomes all JPEG, the rest stay PNG
        lines.append(f"{target.relative_to(copy).as_posix()} {label}\n")
    (copy / "lists").mkdir()
    (copy / "lists" / "dev.txt").write_text("".join(lines))
    (copy / "classes.txt").write_text((digits_root / "classes.txt").read_text())
    result = train(fast_config("epochs=1", f"data.dataset={copy}"), RunOptions(progress=False, device="cpu", dev=True))
    log = (result.run_dir / "log.txt").read_text()
    assert "1 warning(s): shortcut: all 10 files of class '3' have format JPEG, against 0%" in log


@pytest.mark.parametrize(("seconds", "text"), [(42.4, "42 s"), (95, "2 min"), (3000, "50 min"), (9000, "2.5 h")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert describe_duration(seconds) == text


def test_the_recipe_file_is_the_one_documented():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "--config train/configs/photos.yaml" in readme and Path(PHOTOS).is_file()
