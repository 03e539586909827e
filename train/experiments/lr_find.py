"""The learning-rate finder: ``pipenv run train --find-lr``.

Trains from the run's initial weights (``init.weights``, else the network config's
``pretrained`` file), as the run's first epoch would (a frozen backbone stays frozen),
for a bounded number of steps while the learning rate grows exponentially from
``lr_min`` to ``lr_max``, records the (smoothed) loss, and stops early once the loss explodes. It suggests the rate where
the smoothed loss falls fastest. The results go to ``output/lr_find/<name>-<time>/``
(``lr_find.png``, ``lr_find.csv``, ``suggestion.json``); nothing is written to
``output/train/``, so it never looks like a training run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.errors import UserError
from common.files import write_csv, write_json
from common.paths import display_path, output_dir
from common.provenance import stamp
from common.staging import staged
from train.config import LoadedConfig
from train.config_checks import pinned_network_config
from train.data.loading import epoch_order, iterate_batches, load_training_data
from train.loop.trainer import Trainer
from train.process.distributed import Processes, resolve_device
from train.run import RunOptions, initial_weights

SMOOTHING = 0.9
EXPLODE = 4.0


@dataclass(frozen=True)
class LrFindResult:
    """What the finder measured.

    Attributes:
        folder: Output folder.
        suggestion: Suggested learning rate (None when the loss never fell).
        lrs: Learning rate per step.
        losses: Raw loss per step.
        smoothed: Bias-corrected exponential moving average of the loss.
    """

    folder: Path
    suggestion: float | None
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]


def find_lr(loaded: LoadedConfig, options: RunOptions = RunOptions(), lr_min: float = 1e-6, lr_max: float = 1.0,
            steps: int = 100) -> LrFindResult:
    """Sweep the learning rate over ``steps`` optimiser steps and suggest one.

    Raises:
        UserError: For a bad range or step count, or any config / data problem.
    """
    if not 0 < lr_min < lr_max or steps < 5:
        raise UserError(f"--lr-min/--lr-max/--lr-steps: need 0 < lr_min < lr_max and at least 5 steps, got "
                        f"{lr_min}, {lr_max}, {steps}")
    config = loaded.config.for_dev() if options.dev else loaded.config
    device = resolve_device(options.device)
    network_config = pinned_network_config(loaded, config)
    trainer = Trainer(config, network_config, load_training_data(config, network_config, Processes()), Processes(),
                      device)
    initial_weights(trainer, config, network_config)  # init.weights, or the network's pretrained file
    trainer.train_mode()  # as the run's first epoch trains (a frozen backbone stays frozen)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    lrs, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    epoch = 0
    while len(lrs) < steps:
        order = epoch_order(len(trainer.data.train), config.seed, epoch, shuffle=True)
        for images, labels in iterate_batches(trainer.data.train, order, config.batch_size, config.data.num_workers,
                                              drop_singleton=True):
            lr = lr_min * (lr_max / lr_min) ** (len(lrs) / (steps - 1))
            loss, _ = trainer.train_step(trainer.augment(images.to(device), generator), labels.to(device), lr)
            value = float(loss.item())
            average = SMOOTHING * average + (1 - SMOOTHING) * value
            corrected = average / (1 - SMOOTHING ** (len(lrs) + 1))
            lrs.append(lr)
            losses.append(value)
            smoothed.append(corrected)
            best = min(best, corrected)
            if not math.isfinite(corrected) or corrected > EXPLODE * best or len(lrs) >= steps:
                break
        else:
            epoch += 1
            continue
        break
    trainer.data.close()
    suggestion = suggest(lrs, smoothed)
    folder = _write(config.network, lrs, losses, smoothed, suggestion, lr_min, lr_max)
    return LrFindResult(folder, suggestion, lrs, losses, smoothed)


def suggest(lrs: list[float], smoothed: list[float]) -> float | None:
    """The rate where the smoothed loss falls fastest against log(lr), before its minimum."""
    values = np.asarray(smoothed, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.sum() < 5:
        return None
    end = int(np.nanargmin(np.where(finite, values, np.nan))) + 1
    if end < 3:
        return None
    slope = np.gradient(values[:end], np.log(np.asarray(lrs[:end])))
    index = int(np.argmin(slope))
    return float(lrs[index]) if slope[index] < 0 else None


def _write(name: str, lrs: list[float], losses: list[float], smoothed: list[float], suggestion: float | None,
           lr_min: float, lr_max: float) -> Path:
    target = output_dir() / "lr_find" / f"{Path(name).stem}-{stamp()}"
    with staged(target) as stage:
        write_csv(stage.path / "lr_find.csv", ["step", "lr", "loss", "smoothed_loss"],
                  ([step, *(f"{v:.6g}" for v in row)] for step, row in enumerate(zip(lrs, losses, smoothed))))
        write_json(stage.path / "suggestion.json", {
            "suggested_lr": suggestion, "rule": "steepest descent of the smoothed loss against log(lr), before its "
            "minimum", "lr_min": lr_min, "lr_max": lr_max, "steps": len(lrs)})
        _plot(stage.path / "lr_find.png", lrs, losses, smoothed, suggestion)
    return target


def _plot(path: Path, lrs: list[float], losses: list[float], smoothed: list[float], suggestion: float | None) -> None:
    from common.plotting import new_figure, save_figure

    figure = new_figure(7, 4.5, dpi=110)
    axes = figure.subplots()
    axes.plot(lrs, losses, alpha=0.3, label="loss")
    axes.plot(lrs, smoothed, label="smoothed loss")
    if suggestion:
        axes.axvline(suggestion, color="red", linestyle="--", label=f"suggested lr {suggestion:.2e}")
    axes.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="Learning-rate finder")
    finite = [v for v in smoothed if math.isfinite(v)]
    raw = [v for v in losses if math.isfinite(v)]
    if finite:
        axes.set_ylim(min(min(finite), min(raw)) * 0.9, min(max(finite), 3 * min(finite)) * 1.1)
    axes.grid(alpha=0.3)
    axes.legend()
    save_figure(figure, path)


def describe(result: LrFindResult) -> str:
    """Console lines for a finished search."""
    hint = (f"suggested optim.lr={result.suggestion:.2e} (steepest descent of the loss)" if result.suggestion
            else "no suggestion: the loss never fell; widen --lr-min/--lr-max or check the data")
    return f"{len(result.lrs)} steps from {result.lrs[0]:.1e} to {result.lrs[-1]:.1e}; {hint}\n" \
           f"plot: {display_path(result.folder / 'lr_find.png')}"
