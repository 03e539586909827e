"""Fixtures for the training tests: a tiny network config and fast configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.train_config import LoadedConfig, load_train_config

TINY_NETWORK = """\
version: 1
arch: {name: small_cnn, params: {channels: [8, 16], dropout: 0.1}}
num_classes: 10
input: {color_mode: L, height: 8, width: 8, interpolation: bilinear, mean: [0.3], std: [0.4]}
"""


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
