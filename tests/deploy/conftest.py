"""A small trained run, shared by the deployment tests (trained once per session)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.train.conftest import TINY_NETWORK


@dataclass(frozen=True)
class TrainedRun:
    """A finished training run of the tiny network on the digits."""

    run_dir: Path
    network_config: Path
    digits_root: Path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, digits_root: Path) -> TrainedRun:
    from common.train_config import load_train_config
    from train.loop import RunOptions, train

    folder = tmp_path_factory.mktemp("trained")
    network = folder / "tiny.yaml"
    network.write_text(TINY_NETWORK)
    previous = os.environ.get("IMAGEPIPE_OUTPUT")
    os.environ["IMAGEPIPE_OUTPUT"] = str(folder / "output")
    try:
        config = load_train_config(overrides=[f"network={network}", f"data.dataset={digits_root}", "epochs=4",
                                              "batch_size=32", "optim.lr=0.01"])
        result = train(config, RunOptions(progress=False, device="cpu"))
    finally:
        if previous is None:
            os.environ.pop("IMAGEPIPE_OUTPUT")
        else:
            os.environ["IMAGEPIPE_OUTPUT"] = previous
    return TrainedRun(result.run_dir, network, digits_root)
