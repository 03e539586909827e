"""TensorBoard (the default tracker): events under ``<run>/tensorboard/``.

``tensorboard --logdir output/train`` shows every run; the x axis is the optimiser
step. The run's hyperparameters and final metrics go to the HParams view (written
into the same events, so each run is one row there). A resumed run drops the events
an earlier attempt wrote after the step it continues from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.run_folder import RunStatus
from train.watch.trackers.base import TRACKERS, RunInfo, Tracker


@TRACKERS.register("tensorboard")
class TensorBoardTracker(Tracker):
    """Writes TensorBoard events with ``torch.utils.tensorboard``.

    Args:
        run: The run it tracks.
    """

    requires = ("tensorboard",)

    def __init__(self, run: RunInfo):
        super().__init__(run)
        from torch.utils.tensorboard import SummaryWriter

        purge = None if run.resumed_step is None else run.resumed_step + 1
        self.writer = SummaryWriter(str(run.folder.tensorboard_dir), purge_step=purge)

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """One scalar event per value."""
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """An image event (``(H, W, 3)``)."""
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def log_histograms(self, values: Mapping[str, np.ndarray], step: int) -> None:
        """One histogram event per entry."""
        for key, array in values.items():
            self.writer.add_histogram(key, array, step)

    def log_summary(self, hparams: Mapping[str, Any], metrics: Mapping[str, float], step: int) -> None:
        """The HParams view's session: hyperparameters, and the metrics as scalars of the same names."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        for summary in hparams_summary(dict(hparams), dict(metrics)):
            self.writer.file_writer.add_summary(summary)
        self.log_scalars(metrics, step)

    def log_files(self, paths: Sequence[Path]) -> None:
        """Nothing: the files are in the run folder beside the events."""

    def log_card(self, name: str, card: Mapping[str, Any]) -> None:
        """A text event (TensorBoard's Text tab) with the card as JSON."""
        self.writer.add_text(name, "```\n" + json.dumps(dict(card), indent=2) + "\n```")

    def flush(self) -> None:
        """Write buffered events to disk."""
        self.writer.flush()

    def close(self, status: RunStatus) -> None:
        """Flush and close the event file."""
        self.writer.close()
