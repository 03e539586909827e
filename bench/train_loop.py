"""Training-loop throughput: the training stage's epoch against a bare hand-written loop.

Both train the default network (``digits_cnn``) with AdamW at the default batch size
on the bundled digits' training split, decoded once and held in memory, without
augmentation (the bare loop has none). Rounds alternate between the two so that
machine noise hits both alike; the table reports median samples/s and their ratio.
Target: the stage's loop reaches at least 0.95 of the bare loop.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from common.digits import ensure_digits
from networks import build_network, load_network_config
from train.config import load_train_config
from train.data import load_training_data
from train.distributed import Processes
from train.trainer import Trainer

TARGET = 0.95


def main(rounds: int) -> int:
    """Measure and print; returns 0 when the target is met, 1 otherwise."""
    ensure_digits()
    loaded = load_train_config(overrides=["augment.rotation=0", "augment.translate=0", "augment.scale_min=1",
                                          "augment.scale_max=1"])
    config = loaded.config
    network_config = load_network_config(config.network)
    device = torch.device("cpu")
    trainer = Trainer(config, network_config, load_training_data(config, network_config, Processes()), Processes(),
                      device)
    images, labels = trainer.data.train.images, trainer.data.train.labels

    torch.manual_seed(config.seed)
    bare_network = build_network(network_config).to(device)
    bare_optimizer = torch.optim.AdamW(bare_network.parameters(), lr=config.optim.lr,
                                       weight_decay=config.optim.weight_decay)

    def bare_epoch(epoch: int) -> float:
        bare_network.train()
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch))
        started = time.perf_counter()
        for batch in torch.split(order, config.batch_size):
            logits = bare_network(images[batch])
            loss = F.cross_entropy(logits, labels[batch])
            bare_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            bare_optimizer.step()
        return len(labels) / (time.perf_counter() - started)

    def stage_epoch(epoch: int) -> float:
        trainer.epoch = epoch  # the epoch seeds the shuffle; the benchmark picks it
        started = time.perf_counter()
        trainer.train_epoch()
        return len(labels) / (time.perf_counter() - started)

    bare_epoch(-1), stage_epoch(0)  # warm-up, not measured
    bare, stage = [], []
    for r in range(rounds):
        bare.append(bare_epoch(r))
        stage.append(stage_epoch(r + 1))
    ratio = statistics.median(stage) / statistics.median(bare)
    print(f"training loop on {len(labels)} digits, {network_config.name}, AdamW, batch {config.batch_size}, "
          f"{torch.get_num_threads()} threads, {rounds} alternating rounds (median samples/s)")
    print(f"  bare hand-written loop   {statistics.median(bare):9.0f}")
    print(f"  train stage loop         {statistics.median(stage):9.0f}")
    print(f"  ratio stage / bare       {ratio:9.3f}   (target >= {TARGET})")
    return 0 if ratio >= TARGET else 1
