"""What a run says on the console (and in ``log.txt``): what it is, one line per epoch, how it ended.

:class:`ConsoleHook` logs, when the run starts, its folder, device, network (a
per-layer table, :mod:`train.watch.network_table`), data, the thread policy's line and
a quick check of the data; after each epoch one line with the headline metrics of
:mod:`train.metrics` (``* best`` when the epoch is the best so far), and after the
first whole epoch an estimate of the run's time; at the end the closing sentence
(unless a signal stopped the run: the preemption hook says how to continue then).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from common.paths import display_path
from common.run_folder import MetricSpec, RunFolder, RunStatus
from datatools.profile import quick_check
from train.loop.hooks import Hook, RunState
from train.watch.network_table import model_summary


@dataclass(frozen=True)
class RunStart:
    """What the first lines of a run say besides what the trainer knows.

    Attributes:
        verb: ``run`` for a new run, ``resuming`` for one that continues.
        init: How the initial weights were loaded (the manifest's ``init``), or None.
        changes: For a resumed run, its config changes (``"none"`` when there are none); None for a new run.
        threads: The thread policy's line.
    """

    verb: str
    init: dict[str, Any] | None = None
    changes: Any = None
    threads: str = ""


def describe_duration(seconds: float) -> str:
    """``"40 s"``, ``"12 min"`` or ``"2.5 h"``: a duration as a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ConsoleHook(Hook):
    """The run's console lines (see the module docstring).

    Comes after the checkpoint hook: an epoch's line says whether it is the best, and the closing sentence
    gives the best epoch.

    Args:
        log: The run's logger.
        folder: The run folder.
        start: What the first lines say.
        metrics: The run's declared metrics (the headline ones are in each epoch's line).
    """

    name = "console"

    def __init__(self, log: logging.Logger, folder: RunFolder, start: RunStart, metrics: Sequence[MetricSpec]):
        self.log, self.folder, self.start = log, folder, start
        self.shown = [spec.name for spec in metrics if spec.headline and spec.name != "lr"]
        self.epoch_started = time.perf_counter()
        self.first_whole_epoch = 0

    def before_run(self, run: RunState) -> None:
        """What this run is: folder, device, network, data, threads, a quick check of the data."""
        trainer, data, start = run.trainer, run.trainer.data, self.start
        self.first_whole_epoch = trainer.epoch + (1 if trainer.position is None else 2)
        self.log.info("%s %s (%s, %d process(es))", start.verb, display_path(self.folder.path), trainer.device,
                      trainer.processes.world_size)
        if start.changes is not None:
            inside = f", step {trainer.position.done} of {trainer.steps_per_epoch}" if trainer.position else ""
            self.log.info("continuing after epoch %d%s; config changes: %s", trainer.epoch, inside, start.changes)
        if start.init:
            self.log.info("initial weights from %s (%s): %s", start.init["file"], start.init["mode"],
                          start.init["summary"])
        network_config = trainer.network_config
        self.log.info("network %s (%s), hash %s\n%s", network_config.name, network_config.arch.name,
                      network_config.hash[:12], model_summary(trainer.network, trainer.device))
        self.log.info("data %s: %s %d images (%s), %s %d images (%s); %d steps per epoch",
                      display_path(data.dataset.root), data.train.name, len(data.train), data.train.source,
                      data.val.name, len(data.val), data.val.source, trainer.steps_per_epoch)
        for note in dict.fromkeys(data.train.notes + data.val.notes):
            self.log.warning("%s", note)
        if start.threads:
            self.log.info("%s", start.threads)
        self.log.info("%s", quick_check(data.dataset, data.train.samples, network_config.input.color_mode,
                                        data.train.name))
        self.epoch_started = time.perf_counter()

    def after_epoch(self, run: RunState, row: dict[str, Any]) -> None:
        """The epoch's line; after the first whole epoch of this start, the time estimate."""
        trainer = run.trainer
        best = run.result.get("best")
        values = "  ".join(f"{name} {row[name]:.4f}" for name in self.shown if name in row)
        self.log.info("epoch %d/%d  %s  lr %.2e  %.0f samples/s%s", trainer.epoch, trainer.config.epochs, values,
                      row["lr"], row["samples_per_second"],
                      "  * best" if best and best["epoch"] == trainer.epoch else "")
        if trainer.epoch == self.first_whole_epoch:
            seconds = time.perf_counter() - self.epoch_started
            epochs, left = trainer.config.epochs, trainer.config.epochs - trainer.epoch
            self.log.info("time estimate: %.1f s per epoch (epoch %d, with validation): about %s for %d epochs, "
                          "%s left", seconds, trainer.epoch, describe_duration(seconds * epochs), epochs,
                          describe_duration(seconds * left))
        self.epoch_started = time.perf_counter()

    def after_run(self, run: RunState, status: RunStatus) -> None:
        """The closing sentence (not after a signal, nor an error, which speak for themselves)."""
        if not run.clean or status.resumable:
            return
        message = run.message or f"finished {run.trainer.epoch} epochs"
        best = run.result.get("best")
        if best:
            message += f"; best {best['metric']} {best['value']:.4f} at epoch {best['epoch']}"
        run.message = message
        level = logging.ERROR if status is RunStatus.DIVERGED else logging.INFO
        self.log.log(level, "%s\nrun folder: %s", message, display_path(self.folder.path))
