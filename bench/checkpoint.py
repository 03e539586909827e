"""Recovery checkpoints: what one write of ``last.pt`` inside an epoch costs.

For the digits model (``digits_cnn``, the default config) and timm's ResNet-18 at
224x224 (10 classes, AdamW, batch 32), on this machine's CPU: the median time of
:meth:`train.resilience.checkpoints.CheckpointHook.save_position` (gathering the position, ``torch.save``,
the sha256 sidecar, the atomic write with its ``fsync``), the checkpoint's size, and the
median time of one optimiser step. Printed as milliseconds per save, and as a share of
one epoch (one save per epoch; the digits' 1,257 training images, or 16,000 images
for the ResNet-18 as in ``pipenv run bench data``) and of the default interval
(``checkpoint.every_minutes`` = 10). Target: a save costs at most 1% of the default
interval for both.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.data import contract
from bench.train_loop import photo_dataset
from common.digits import ensure_digits
from common.run_folder import RunFolder
from networks import load_network_config
from networks.config import ArchConfig, NetworkConfig
from train.config import TrainConfig, load_train_config
from train.data.loading import TrainingData, load_split, load_training_data, steps_per_epoch
from train.loop.epoch import EpochProgress
from train.loop.hooks import Hooks, RunState
from train.loop.trainer import Trainer
from train.process.distributed import Processes
from train.resilience.checkpoints import CheckpointHook

TARGET = 0.01
"""Largest share of the default 10-minute interval one save may take."""


def main(rounds: int) -> int:
    """Measure and print; 0 when the target is met for both models."""
    ensure_digits()
    config = load_train_config().config
    network_config = load_network_config(config.network)
    digits = Trainer(config, network_config, load_training_data(config, network_config, Processes()), Processes(),
                     torch.device("cpu"))
    print(f"recovery checkpoints (last.pt inside an epoch), {torch.get_num_threads()} threads, median of "
          f"{rounds} (CPU; on a GPU the weights are copied to the host first)")
    print(f"  {'model':24} {'MB':>6} {'save ms':>8} {'step ms':>8} {'epoch':>16} {'% of epoch':>10} "
          f"{'% of 10 min':>11}")
    ok = measure("digits_cnn (digits)", digits, len(digits.data.train), config, rounds)
    with tempfile.TemporaryDirectory() as folder:
        dataset = photo_dataset(Path(folder) / "photos", 64, size=224)
        resnet = NetworkConfig(name="bench", arch=ArchConfig("timm", {"model": "resnet18"}), num_classes=10,
                               input=contract(224))
        split = load_split(dataset, "train", resnet.input, pack="off")
        photos = load_train_config(None, ["batch_size=32", "epochs=100", "schedule.name=constant"]).config
        trainer = Trainer(photos, resnet, TrainingData(dataset, split, split), Processes(), torch.device("cpu"))
        ok &= measure("resnet18 224x224", trainer, 16_000, photos, rounds)
    return 0 if ok else 1


def measure(name: str, trainer: Trainer, epoch_images: int, config: TrainConfig, rounds: int) -> bool:
    """Time optimiser steps and saves of ``trainer``; print a row; True when a save is within the target."""
    images = trainer.data.train.images[:config.batch_size]
    labels = trainer.data.train.labels[:config.batch_size]
    steps = []
    for _ in range(rounds + 1):  # the first step (optimiser state created) is not measured
        started = time.perf_counter()
        trainer.train_step(images, labels)
        steps.append(time.perf_counter() - started)
    trainer.position = EpochProgress.start(0, trainer.device)
    with tempfile.TemporaryDirectory() as folder:
        run_folder = RunFolder(Path(folder) / "run")
        run_folder.checkpoints_dir.mkdir(parents=True)
        quiet = logging.getLogger("bench.checkpoint")
        quiet.setLevel(logging.WARNING)  # not a line per save
        hook = CheckpointHook(run_folder, config, quiet)
        run = RunState(trainer, Hooks([hook]))
        saves = [hook.save_position(run) for _ in range(rounds + 1)][1:]  # the first replaces no file
        size = (run_folder.checkpoints_dir / "last.pt").stat().st_size / 2**20
    save, step = statistics.median(saves), statistics.median(steps[1:])
    per_epoch = steps_per_epoch(epoch_images, config.batch_size, 1)
    epoch_share, interval_share = save / (step * per_epoch), save / 600.0
    print(f"  {name:24} {size:6.1f} {1000 * save:8.0f} {1000 * step:8.1f} {f'{epoch_images:,} images':>16} "
          f"{100 * epoch_share:9.2f}% {100 * interval_share:10.3f}%   (target <= {100 * TARGET:.0f}% of 10 min)")
    return interval_share <= TARGET
