"""Optimiser and learning-rate schedule."""

from __future__ import annotations

import math

import torch

from networks.base import ImageClassifier
from train.config import OptimConfig, TrainConfig


def build_optimizer(network: ImageClassifier, config: OptimConfig, backbone_lr_scale: float = 1.0
                    ) -> torch.optim.Optimizer:
    """SGD or AdamW, with weight decay on weights of rank >= 2 only.

    Biases and normalisation parameters (rank < 2) are not decayed. With
    ``backbone_lr_scale`` other than 1, the classifier head
    (:meth:`networks.base.ImageClassifier.classifier_module`) and the rest (the
    backbone) are separate groups; every group carries an ``lr_scale`` that the
    trainer multiplies the scheduled learning rate by.
    """
    head = set()
    if backbone_lr_scale != 1.0:
        head = {id(p) for p in network.classifier_module().parameters()}
    groups = []
    for is_head in (True, False):
        scale = 1.0 if is_head else backbone_lr_scale
        params = [p for p in network.parameters() if (id(p) in head) == is_head]
        for decay in (True, False):
            chosen = [p for p in params if (p.ndim >= 2) == decay]
            if chosen:
                groups.append({"params": chosen, "weight_decay": config.weight_decay if decay else 0.0,
                               "lr_scale": scale})
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas))


def lr_factor(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """The learning-rate multiplier at an optimiser step (0-based), a pure function.

    Because it depends on the step alone, the schedule needs no state of its own:
    restoring the step restores the schedule exactly.

    Args:
        step: Optimiser steps taken so far.
        steps_per_epoch: Optimiser steps in one epoch.
        config: The training config (``schedule`` and ``epochs``).

    Returns:
        The factor applied to ``optim.lr``.
    """
    schedule = config.schedule
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(total, round(schedule.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return schedule.warmup_start + (1.0 - schedule.warmup_start) * step / warmup
    if schedule.name == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return schedule.min_lr_ratio + (1.0 - schedule.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule.name == "step":
        return schedule.gamma ** ((step // steps_per_epoch) // schedule.step_epochs)
    return 1.0
