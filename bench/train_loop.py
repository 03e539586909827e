"""Training-loop throughput: the training stage's epoch against a bare hand-written loop.

1. Digits: both train the default network (``digits_cnn``) with AdamW at the default
   batch size on the bundled digits' training split, decoded once and held in memory,
   without augmentation (the bare loop has none).
2. Augmentation off the critical path: the stage trains with the photo recipe's
   augmentation (``train/configs/photos.yaml``: flips, shifts, zoom, brightness and
   contrast), prepared for the next batch in a thread while the current one trains,
   against the bare loop *without* augmentation; timm's ResNet-18 at 64x64 on generated
   photos (:data:`PHOTOS` images in memory), AdamW, batch 32.

Rounds alternate between the contenders so that machine noise hits both alike; the
table reports median samples/s and their ratio. Target: the stage's loop reaches at
least 0.95 of the bare loop in both.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench.data import contract
from common.digits import ensure_digits
from common.lists import Dataset, load_dataset
from common.paths import PROJECT_ROOT
from networks import build_network, load_network_config
from networks.config import ArchConfig, NetworkConfig
from train.config import load_train_config
from train.data import TrainingData, load_split, load_training_data
from train.distributed import Processes
from train.trainer import Trainer

TARGET = 0.95
PHOTOS = 1280
"""Generated photos of the augmentation case (40 batches of 32)."""


def main(rounds: int) -> int:
    """Measure and print; returns 0 when every target is met, 1 otherwise."""
    ok = digits_loop(rounds)
    ok &= augmentation_loop(rounds)
    return 0 if ok else 1


def digits_loop(rounds: int) -> bool:
    """The stage's epoch against a bare loop on the digits, no augmentation."""
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

    def bare_epoch(epoch: int) -> None:
        bare_network.train()
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch))
        for batch in torch.split(order, config.batch_size):
            loss = F.cross_entropy(bare_network(images[batch]), labels[batch])
            bare_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            bare_optimizer.step()

    bare, stage = alternate(bare_epoch, stage_epoch(trainer), len(labels), rounds)
    print(f"training loop on {len(labels)} digits, {network_config.name}, AdamW, batch {config.batch_size}, "
          f"{torch.get_num_threads()} threads, {rounds} alternating rounds (median samples/s)")
    return report("bare hand-written loop", bare, "train stage loop", stage)


def augmentation_loop(rounds: int) -> bool:
    """The stage with the photo recipe's augmentation against a bare loop without any."""
    with tempfile.TemporaryDirectory() as folder:
        dataset = photo_dataset(Path(folder), PHOTOS)
        network_config = NetworkConfig(name="bench", arch=ArchConfig("timm", {"model": "resnet18"}),
                                       num_classes=len(dataset.class_names), input=contract(64))
        split = load_split(dataset, "train", network_config.input, pack="off")
    config = load_train_config(PROJECT_ROOT / "train" / "configs" / "photos.yaml",
                               ["network=bench", "data.dataset=bench", "batch_size=32", "epochs=100",
                                "schedule.name=constant", "schedule.warmup_epochs=0"]).config
    trainer = Trainer(config, network_config, TrainingData(dataset, split, split), Processes(), torch.device("cpu"))
    assert trainer.augment.enabled
    torch.manual_seed(0)
    bare = build_network(network_config).train()
    optimizer = torch.optim.AdamW(bare.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    images, labels = split.images, split.labels

    def bare_epoch(epoch: int) -> None:
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch + 1))
        for batch in torch.split(order, config.batch_size):
            loss = F.cross_entropy(bare(images[batch]), labels[batch], label_smoothing=config.optim.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    bare_rate, stage_rate = alternate(bare_epoch, stage_epoch(trainer), len(labels), rounds)
    print(f"\ntraining loop, timm resnet18 at 64x64, {len(labels):,} generated photos, batch {config.batch_size}, "
          f"{torch.get_num_threads()} threads, {rounds} alternating rounds (median samples/s)")
    return report("bare loop, no augmentation", bare_rate, "stage, photos.yaml augmentation", stage_rate)


def stage_epoch(trainer: Trainer) -> Callable[[int], None]:
    """One epoch of the stage's loop; the epoch number seeds the shuffle and the augmentation."""
    def run(epoch: int) -> None:
        trainer.epoch = max(epoch, 0)
        trainer.train_epoch()

    return run


def alternate(bare: Callable[[int], None], stage: Callable[[int], None], samples: int, rounds: int
              ) -> tuple[float, float]:
    """Median samples/s of each, one warm-up epoch each, then rounds alternating between them."""
    bare(-1), stage(0)  # warm-up, not measured
    rates: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        for rate, run, epoch in ((rates[0], bare, r), (rates[1], stage, r + 1)):
            started = time.perf_counter()
            run(epoch)
            rate.append(samples / (time.perf_counter() - started))
    return statistics.median(rates[0]), statistics.median(rates[1])


def report(bare_name: str, bare: float, stage_name: str, stage: float) -> bool:
    """Print both rates and their ratio; True when the target is met."""
    ratio = stage / bare
    print(f"  {bare_name:32} {bare:9.0f}")
    print(f"  {stage_name:32} {stage:9.0f}")
    print(f"  {'ratio stage / bare':32} {ratio:9.3f}   (target >= {TARGET})")
    return ratio >= TARGET


def photo_dataset(root: Path, count: int, size: int = 72, classes: int = 10) -> Dataset:
    """A data set of ``count`` generated photos (PNG, ``size`` x ``size``, crops of scikit-learn's sample
    photos with a colour shift per class) with one ``train`` list."""
    from bench.export import photo_crops

    (root / "lists").mkdir(parents=True)
    (root / "classes.txt").write_text("".join(f"shift{c}\n" for c in range(classes)))
    shifts = np.random.default_rng(1).uniform(0.6, 1.4, size=(classes, 3))
    lines = []
    for index, crop in enumerate(photo_crops(count, size, seed=3)):
        pixels = np.clip(crop.transpose(1, 2, 0) * shifts[index % classes], 0, 255)  # (C, H, W) -> (H, W, C)
        Image.fromarray(pixels.astype(np.uint8)).save(root / f"{index:05d}.png")
        lines.append(f"{index:05d}.png {index % classes}\n")
    (root / "lists" / "train.txt").write_text("".join(lines))
    return load_dataset(root)
