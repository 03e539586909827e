"""A run written before the typed owner still loads as a training config."""

from __future__ import annotations

import shutil
from pathlib import Path

from common.run_folder import RunFolder
from train.config import load_train_config

LEGACY = Path(__file__).resolve().parents[2] / "data" / "legacy"
"""config.yaml, manifest.json and metrics.csv of a default digits run written before RunFolder existed."""


def test_a_run_written_before_the_typed_owner_loads_as_a_training_config(tmp_path):
    run = RunFolder(tmp_path / "train" / "digits_cnn-20261125-114158")
    run.path.mkdir(parents=True)
    shutil.copy(LEGACY / "config_v1.yaml", run.config_path)
    loaded = load_train_config(run.config_path)
    assert loaded.config.network == "digits_cnn" and loaded.config.epochs == 60 and len(loaded.network_hash) == 64
    assert run.read_run_config().network_hash == loaded.network_hash
