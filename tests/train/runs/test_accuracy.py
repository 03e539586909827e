"""The default config reaches the promised accuracy on the bundled digits' test split."""

from __future__ import annotations

import pytest
import torch

from common.images import load_samples
from common.lists import load_dataset, read_split
from networks import build_network
from networks.checkpoint import checkpoint_network_config, read_checkpoint
from train.config import DEFAULT_CONFIG, load_train_config
from train.run import RunOptions, train

TARGET = 0.993


@pytest.mark.slow
def test_default_config_reaches_the_target_test_accuracy(digits_root):
    result = train(load_train_config(DEFAULT_CONFIG, [f"data.dataset={digits_root}"]),
                   RunOptions(progress=False, device="cpu"))
    checkpoint = read_checkpoint(result.run_dir / "checkpoints" / "best.pt")
    network = build_network(checkpoint_network_config(checkpoint, "best.pt"))
    network.load_state_dict(checkpoint["model"])
    network.eval()
    dataset = load_dataset(digits_root)
    images, labels, _ = load_samples(dataset, read_split(dataset, "test"), network.config.input)
    with torch.no_grad():
        predicted = network(torch.from_numpy(images)).argmax(dim=1).numpy()
    accuracy = float((predicted == labels).mean())
    assert accuracy >= TARGET, f"test accuracy {accuracy:.4f} < {TARGET}"
