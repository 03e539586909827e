"""Fine-tuning helpers of the trainer: a frozen backbone for the first epochs, and weight averaging.

Both are set in the training config's ``finetune`` section; the learning-rate
split between backbone and head lives in :func:`train.loop.optim.build_optimizer`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from networks.base import ImageClassifier


class BackboneFreezer:
    """Trains only the classifier head while ``epoch < epochs``.

    Freezing sets ``requires_grad`` off on every parameter outside the head (so no
    gradient is computed or applied) and keeps the backbone's batch-norm layers in
    evaluation mode (so their running statistics stay as loaded).

    Args:
        network: The network being trained.
        epochs: Number of first epochs with the backbone frozen; 0 never freezes.
    """

    def __init__(self, network: ImageClassifier, epochs: int):
        self.network = network
        self.epochs = epochs
        self.frozen = False
        head = network.classifier_module() if epochs > 0 else None
        head_ids = {id(p) for p in head.parameters()} if head is not None else set()
        head_modules = {id(m) for m in head.modules()} if head is not None else set()
        self.backbone = [p for p in network.parameters() if id(p) not in head_ids]
        self.backbone_norms = [m for m in network.modules()
                               if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in head_modules]

    def update(self, epoch: int) -> bool:
        """Freeze or release the backbone for an epoch (0-based); True when that changed it."""
        frozen = epoch < self.epochs
        if frozen == self.frozen:
            return False
        for parameter in self.backbone:
            parameter.requires_grad_(not frozen)
        self.frozen = frozen
        return True

    def hold_statistics(self) -> None:
        """While frozen, put the backbone's batch-norm layers back in evaluation mode (call after ``train()``)."""
        if self.frozen:
            for module in self.backbone_norms:
                module.eval()


class WeightAverage:
    """An exponential moving average of a network's weights and buffers, updated every step.

    Args:
        network: The network being trained (copied; the copy holds the average).
        decay: Weight of the old average at each step, e.g. 0.999.
    """

    def __init__(self, network: ImageClassifier, decay: float):
        self.decay = decay
        self.averaged = AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @property
    def network(self) -> ImageClassifier:
        """The network holding the averaged weights (what validation and checkpoints use)."""
        return self.averaged.module

    def update(self, network: nn.Module) -> None:
        """Fold the network's current weights into the average (the first update copies them)."""
        self.averaged.update_parameters(network)

    def state_dict(self) -> dict[str, Any]:
        """What resuming needs besides the averaged weights: the number of updates."""
        return {"decay": self.decay, "updates": int(self.averaged.n_averaged.item())}

    def load(self, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Restore the averaged weights and the update count."""
        self.network.load_state_dict(weights)
        self.averaged.n_averaged.fill_(int(state["updates"]))
