"""What the trainer reports while it trains, and to whom.

:class:`train.loop.trainer.Trainer` holds an :class:`Observer` and calls it at a few
points: after each optimiser step, for each validation batch, at the end of
validation; its :attr:`Observer.timer` times the phases of each step. This base
class watches nothing and times nothing (what the benchmark's bare trainer and the
learning-rate finder use); a training run replaces it with
:class:`train.watch.watch.Watch`.
"""

from __future__ import annotations

from typing import Any

import torch

from train.loop.phase_timer import PhaseTimer


class Observer:
    """Receives the trainer's reports; this one ignores them.

    Args:
        timer: The phase timer the trainer uses (a disabled one by default).
    """

    def __init__(self, timer: PhaseTimer | None = None):
        self.timer = timer if timer is not None else PhaseTimer(enabled=False)

    def step_end(self, trainer: Any, images: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor,
                 logits: torch.Tensor) -> None:
        """After an optimiser step (the trainer's :attr:`step` already counts it; gradients are still there).

        Args:
            trainer: The :class:`train.loop.trainer.Trainer`.
            images: The batch as trained on ``(B, C, H, W)``: augmented, values 0..255, before normalisation.
            labels: ``(B,)`` class indices.
            loss: The batch's mean loss ``()``.
            logits: ``(B, K)``.
        """

    def val_batch(self, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> None:
        """One validation batch: images ``(B, C, H, W)`` 0..255, labels ``(B,)``, logits ``(B, K)`` (float32)."""

    def val_end(self, processes: Any) -> None:
        """Validation finished (every process calls it; the observer may combine what the processes saw)."""
