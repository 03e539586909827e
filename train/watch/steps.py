"""Step-level curves: every few optimiser steps the training loss, learning rate, throughput and norms.

:class:`StepLogHook` watches each optimiser step. Every ``log.every_steps`` steps
(:func:`points_every`: about :data:`POINTS_PER_RUN` points a run when it is 0) it logs
the training loss (the mean since the last point), the learning rate, samples per
second and the weight and gradient norms per layer group (:mod:`train.watch.layer_norms`)
to the trackers and to ``steps.csv`` (written at each epoch's end, and every :data:`WRITE_SECONDS` within
an epoch, so a page that watches the run sees the curve grow); histograms every
``log.histograms_every_steps``. At the first step it draws the augmented batch as the
network gets it (``samples/train_batch.png``).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from common.run_folder import RunStatus
from train.config import TrainConfig
from train.loop.hooks import Hook, RunState, Step
from train.watch.layer_norms import LayerNorms
from train.watch.plots import image_grid
from train.watch.recorder import RunRecorder

POINTS_PER_RUN = 100
"""Step-level points a run gets when ``log.every_steps`` is 0."""

WRITE_SECONDS = 5.0
"""Longest time logged points wait in memory before ``steps.csv`` gets them."""

GRID_IMAGES = 64
"""Most images drawn from the first training batch."""


def auto_every(total_steps: int, points: int = POINTS_PER_RUN) -> int:
    """Steps between logged points so that a run of ``total_steps`` gets about ``points`` of them (at least every step)."""
    return max(1, round(total_steps / points))


def points_every(config: TrainConfig, steps_per_epoch: int) -> int:
    """Steps between logged points: ``log.every_steps``, or about :data:`POINTS_PER_RUN` over the run."""
    return config.log.every_steps or auto_every(config.epochs * steps_per_epoch)


class StepLogHook(Hook):
    """Logs a point every :func:`points_every` steps and draws the first training batch.

    Args:
        recorder: The run's recorder (``steps.csv``, figures, the trackers).
        config: The training config (``log.*``).
        every: Steps between points.
        network: The network (its layer groups' norms).
        class_names: The class names (captions of the batch grid).
    """

    name = "step_log"

    def __init__(self, recorder: RunRecorder, config: TrainConfig, every: int, network: torch.nn.Module,
                 class_names: list[str]):
        self.recorder, self.every, self.class_names = recorder, every, class_names
        self.histograms_every = config.log.histograms_every_steps
        self.is_main = recorder.is_main
        self.norms = LayerNorms(network)
        self.loss_sum: torch.Tensor | None = None
        self.loss_steps = self.window_samples = 0
        self.window_started = time.perf_counter()
        self.pending: list[dict[str, Any]] = []
        self.batch_drawn = False
        self.written = time.perf_counter()

    def before_run(self, run: RunState) -> None:
        """Start the first window."""
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=run.trainer.device)
        self.window_started = time.perf_counter()

    def after_step(self, run: RunState, step: Step) -> None:
        """Add the step to the window; every ``every`` steps log a point; at the first step draw the batch."""
        with run.timer.phase("logging"):
            self.loss_sum += step.loss.detach()
            self.loss_steps += 1
            self.window_samples += len(step.labels)
            if not self.batch_drawn:
                self._draw_batch(step)
            if step.step % self.every == 0:
                self._log_point(run, step)

    def _draw_batch(self, step: Step) -> None:
        self.batch_drawn = True
        if not self.is_main:
            return
        shown = step.images[:GRID_IMAGES].detach().float().cpu().numpy()
        captions = [[self.class_names[label]] for label in step.labels[:GRID_IMAGES].tolist()]
        grid = image_grid(shown, captions, f"training batch at step {step.step}: augmented, before normalisation")
        self.recorder.log_image("train/augmented_batch", grid, step.step,
                                self.recorder.folder.samples_dir / "train_batch.png")

    def _log_point(self, run: RunState, step: Step) -> None:
        now = time.perf_counter()
        loss = (self.loss_sum / max(1, self.loss_steps)).item()
        rate = self.window_samples * run.trainer.processes.world_size / max(1e-9, now - self.window_started)
        self.loss_sum.zero_()
        self.loss_steps = self.window_samples = 0
        self.window_started = now
        if not self.is_main:
            return
        norms = self.norms.norms()
        self.recorder.log_scalars({"step/train_loss": loss, "step/lr": step.lr, "step/samples_per_second": rate,
                                   **norms}, step.step)
        if self.histograms_every and step.step % self.histograms_every == 0:
            self.recorder.log_histograms(self.norms.histograms(), step.step)
        self.pending.append({"step": step.step, "epoch": round(step.step / run.trainer.steps_per_epoch, 4),
                             "train/loss": loss, "lr": step.lr, "grad_norm": norms.get("norms/grad_total", ""),
                             "samples_per_second": round(rate, 1)})
        if now - self.written >= WRITE_SECONDS:
            self._write()

    def after_epoch(self, run: RunState, row: dict[str, Any]) -> None:
        """The epoch's points into ``steps.csv``."""
        with run.timer.phase("logging"):
            self._write()

    def after_run(self, run: RunState, status: RunStatus) -> None:
        """The points of the last, unfinished epoch into ``steps.csv``."""
        self._write()

    def _write(self) -> None:
        self.recorder.record_steps(self.pending)
        self.pending = []
        self.written = time.perf_counter()
