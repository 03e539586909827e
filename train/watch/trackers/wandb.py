"""Weights & Biases: config, curves, figures, summary and the run's files, under ``<run>/wandb/``.

Offline by default (``log.wandb.mode``; ``WANDB_MODE`` in the environment wins): no
account and no network are needed, and ``wandb sync <run>/wandb/offline-run-*``
uploads the run later. ``online`` needs ``wandb login`` beforehand; this code never
logs in. The W&B run's id is the run folder's name, so a resumed run continues it.
Needs the ``wandb`` package (the Pipfile's ``[trackers]`` category).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.run_folder import RunStatus
from train.watch.trackers.base import TRACKERS, RunInfo, Tracker, check_reachable


@TRACKERS.register("wandb")
class WandbTracker(Tracker):
    """Logs to a W&B run.

    Args:
        run: The run it tracks.
    """

    requires = ("wandb",)

    @classmethod
    def preflight(cls, log: Mapping[str, Any]) -> None:
        """Online, the W&B server answers within seconds (``WANDB_BASE_URL``, else api.wandb.ai)."""
        if os.environ.get("WANDB_MODE", log["wandb"]["mode"]) != "online":
            return
        check_reachable(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"), "log.wandb.mode online")

    def __init__(self, run: RunInfo):
        super().__init__(run)
        import wandb

        settings = run.log["wandb"]
        run.folder.wandb_dir.mkdir(parents=True, exist_ok=True)
        self.wandb = wandb
        self.run_handle = wandb.init(
            project=settings["project"], entity=settings["entity"], name=run.folder.name, id=run.folder.name,
            dir=str(run.folder.path), config={**run.config, "network_hash": run.network.get("hash")},
            mode=os.environ.get("WANDB_MODE", settings["mode"]), resume="allow",
            settings=wandb.Settings(console="off", disable_git=True, x_disable_stats=True),
        )

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """One history row at ``step``."""
        self.run_handle.log(dict(values), step=step)

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """A ``wandb.Image`` at ``step``."""
        self.run_handle.log({tag: self.wandb.Image(image)}, step=step)

    def log_histograms(self, values: Mapping[str, np.ndarray], step: int) -> None:
        """``wandb.Histogram`` entries at ``step``."""
        self.run_handle.log({key: self.wandb.Histogram(array) for key, array in values.items()}, step=step)

    def log_summary(self, hparams: Mapping[str, Any], metrics: Mapping[str, float], step: int) -> None:
        """The final metrics into the run's summary (the config is logged at the start)."""
        self.run_handle.summary.update(dict(metrics))

    def log_files(self, paths: Sequence[Path]) -> None:
        """The files into the W&B run (uploaded with it)."""
        for path in paths:
            self.run_handle.save(str(path), base_path=str(path.parent), policy="now")

    def log_card(self, name: str, card: Mapping[str, Any]) -> None:
        """The card into the run's summary under ``name``."""
        self.run_handle.summary[name] = dict(card)

    def close(self, status: RunStatus) -> None:
        """Finish the W&B run (exit code 0 for a run that succeeded)."""
        self.run_handle.finish(exit_code=0 if status.succeeded else 1)
