"""Early stopping: a run stops (``stopped_early``) once ``checkpoint.monitor`` stops improving.

``early_stopping.patience`` epochs without an improvement larger than
``early_stopping.min_delta`` end the run after that epoch's checkpoints; 0 turns it
off. The count is part of every checkpoint, so a resumed run stops where the
uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

from common.run_folder import RunStatus
from train.config import TrainConfig
from train.loop.hooks import Hook, RunState
from train.resilience.checkpoints import is_better


class EarlyStopping:
    """Stops after ``patience`` epochs without improvement larger than ``min_delta``.

    Args:
        patience: Epochs to wait; 0 disables.
        min_delta: Smallest improvement that counts.
        mode: ``max`` or ``min``.
    """

    def __init__(self, patience: int, min_delta: float, mode: str):
        self.patience = patience
        self.min_delta = min_delta
        self.mode = mode
        self.best: float | None = None
        self.bad_epochs = 0

    def update(self, value: float) -> bool:
        """Record an epoch's value; True when training should stop."""
        if is_better(value, self.best, self.mode, self.min_delta):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """Bookkeeping to store in checkpoints."""
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore bookkeeping."""
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


class EarlyStoppingHook(Hook):
    """Asks the run to stop when the monitored metric stopped improving.

    Comes before the checkpoint hook in a run's list: each checkpoint holds the count after its epoch.

    Args:
        config: The training config (``checkpoint.monitor``, ``checkpoint.mode``, ``early_stopping.*``).
    """

    name = "early_stopping"

    def __init__(self, config: TrainConfig):
        settings = config.early_stopping
        self.monitor = config.checkpoint.monitor
        self.stopper = EarlyStopping(settings.patience, settings.min_delta, config.checkpoint.mode)

    def after_epoch(self, run: RunState, row: dict[str, Any]) -> None:
        """Count the epoch; ask to stop once ``patience`` epochs passed without improvement."""
        if self.stopper.update(row[self.monitor]):
            run.request_stop(RunStatus.STOPPED_EARLY,
                             f"early stopping: {self.monitor} did not improve by more than {self.stopper.min_delta} "
                             f"for {self.stopper.patience} epochs")

    def state_dict(self) -> dict[str, Any]:
        """The best value and the epochs since it."""
        return self.stopper.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue counting from a checkpoint."""
        self.stopper.load_state_dict(state)
