"""Fixtures for the training tests: a tiny network config and fast configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_NETWORK
from train.config import LoadedConfig, load_train_config


@pytest.fixture
def tiny_network(tmp_path: Path) -> Path:
    """A tiny CNN config at the digits' native 8x8, as a YAML path."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_NETWORK)
    return path


@pytest.fixture
def fast_config(tiny_network: Path, digits_root: Path):
    """``fast_config(*overrides)``: the default config on the tiny network and the session's digits."""

    def make(*overrides: str) -> LoadedConfig:
        base = [f"network={tiny_network}", f"data.dataset={digits_root}", "epochs=2", "batch_size=32",
                "schedule.warmup_epochs=0"]
        return load_train_config(overrides=[*base, *overrides])

    return make
