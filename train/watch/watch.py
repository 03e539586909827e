"""Watching a run: step-level curves, what the network sees, per-class progress, time and system figures.

:class:`Watch` is the observer (train/loop/observer.py) a training run gives its trainer.
It is told about each optimiser step, each validation batch and each epoch's end,
and writes through the run's recorder (which feeds the trackers):

- every ``log.every_steps`` steps: the training loss (mean since the last point),
  learning rate, samples/s, weight and gradient norms per layer group
  (``steps.csv``; histograms every ``log.histograms_every_steps``);
- at the first step: the augmented batch as the network gets it (``samples/train_batch.png``);
- each epoch: per-class precision, recall and F1 (``per_class.csv``), macro F1, the
  time breakdown (``time/*``) and system figures (``system/*``) as ``metrics.csv``
  columns, a warning when the CPU is oversubscribed;
- every ``log.figures_every`` epochs, within ``log.figure_budget`` of the run's
  time (and always after the last epoch): the confusion matrix, the validation
  images the model gets most wrong, ``curves.png``;
- with ``train --profile``: the profiler (train/watch/profiling.py).
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import torch

from train.watch.plots import confusion_image, curves_image, image_grid
from train.watch.layer_norms import LayerNorms
from train.loop.observer import Observer
from train.watch.profiling import StepProfiler
from train.watch.recorder import RunRecorder
from train.watch.system_figures import STARVED, SystemMonitor, oversubscription
from train.watch.validation import ValidationTally, WorstImages, per_class_scores
from train.process.threads import available_cores
from train.loop.phase_timer import PhaseTimer, VerdictContext

POINTS_PER_RUN = 100
"""Step-level points a run gets when ``log.every_steps`` is 0."""

GRID_IMAGES = 64
"""Most images drawn from the first training batch."""

FIRST_FIGURES_SECONDS = 0.4
"""What drawing an epoch's figures is expected to cost before it has been measured (about this, on a 2-core CPU)."""


def auto_every(total_steps: int, points: int = POINTS_PER_RUN) -> int:
    """Steps between logged points so that a run of ``total_steps`` gets about ``points`` of them (at least every step)."""
    return max(1, round(total_steps / points))


def figures_due(epoch: int, every: int, spent: float, last_cost: float, elapsed: float, budget: float) -> bool:
    """Whether to draw the epoch's figures: every ``every`` epochs, while drawing stays within ``budget`` of the time.

    Args:
        epoch: The epoch just finished.
        every: ``log.figures_every``.
        spent: Seconds spent drawing so far.
        last_cost: Seconds the last drawing took (what the next one is expected to take).
        elapsed: Seconds since the run (or this process) started.
        budget: ``log.figure_budget``; 1 (or more) draws whatever it costs.
    """
    return epoch % every == 0 and (budget >= 1 or spent + last_cost <= budget * elapsed)


def tag_name(label: int, name: str) -> str:
    """A class as a tracker key: ``03_cat``; characters trackers refuse become ``_``."""
    return f"{label:02d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', str(name))[:40]}"


class Watch(Observer):
    """The observer of a training run.

    Args:
        trainer: The :class:`train.loop.trainer.Trainer` it watches.
        recorder: The run's recorder.
        profile_steps: ``train --profile``: steps to profile (0: no profiler).
        data_source: Where the training batches come from (for the profiler's verdict).
    """

    def __init__(self, trainer: Any, recorder: RunRecorder, profile_steps: int = 0, data_source: str = ""):
        config, device = trainer.config, trainer.device
        self.trainer, self.recorder, self.log = trainer, recorder, recorder.log
        self.settings = config.log
        self.is_main = trainer.processes.is_main
        self.every = self.settings.every_steps or auto_every(config.epochs * trainer.steps_per_epoch)
        cuda = device.type == "cuda"
        super().__init__(PhaseTimer(True, (lambda: torch.cuda.synchronize(device)) if cuda else None, self.every))
        self.class_names = list(trainer.data.dataset.class_names)
        self.norms = LayerNorms(trainer.network)
        self.tally = ValidationTally(trainer.network_config.num_classes,
                                     self.settings.worst_images if self.is_main else 0, device)
        self.system = SystemMonitor(device)
        self.profiler = None
        if profile_steps:
            context = VerdictContext(device.type, data_source, None, torch.get_num_threads())
            self.profiler = StepProfiler(profile_steps, self.timer, recorder.folder, context, self.is_main)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.loss_steps = self.window_samples = 0
        self.window_started = self.started = time.perf_counter()
        self.pending_steps: list[dict[str, float]] = []
        self.batch_drawn = False
        self.confusion: np.ndarray | None = None
        self.worst: WorstImages | None = None
        self.drawn_epoch = 0
        self.figure_seconds, self.figure_cost = 0.0, FIRST_FIGURES_SECONDS
        self.starved = False

    # -- the trainer's reports ------------------------------------------------------------
    def step_end(self, trainer: Any, images: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor,
                 logits: torch.Tensor) -> None:
        """Accumulate the step; every ``every`` steps log a point; at the first step draw the batch."""
        with self.timer.phase("logging"):
            self.loss_sum += loss.detach()
            self.loss_steps += 1
            self.window_samples += len(labels)
            if not self.batch_drawn:
                self._draw_batch(images, labels, trainer.step)
            if trainer.step % self.every == 0:
                self._log_step(trainer)
        self.timer.end_step()
        if self.profiler is not None:
            self.profiler.step_end()

    def val_batch(self, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> None:
        """Add a validation batch to the tally."""
        self.tally.add(images, labels, logits)

    def val_end(self, processes: Any) -> None:
        """Combine the processes' confusion matrices; keep the pass's results and start the next pass afresh."""
        self.confusion = self.tally.finish(processes)
        self.worst = self.tally.worst()
        self.tally.reset()

    # -- steps ------------------------------------------------------------------------------
    def _draw_batch(self, images: torch.Tensor, labels: torch.Tensor, step: int) -> None:
        self.batch_drawn = True
        if not self.is_main:
            return
        shown = images[:GRID_IMAGES].detach().float().cpu().numpy()
        captions = [[self.class_names[label]] for label in labels[:GRID_IMAGES].tolist()]
        grid = image_grid(shown, captions, f"training batch at step {step}: augmented, before normalisation")
        self.recorder.log_image("train/augmented_batch", grid, step, self.recorder.folder.samples_dir / "train_batch.png")

    def _log_step(self, trainer: Any) -> None:
        now = time.perf_counter()
        loss = (self.loss_sum / max(1, self.loss_steps)).item()
        rate = self.window_samples * trainer.processes.world_size / max(1e-9, now - self.window_started)
        self.loss_sum.zero_()
        self.loss_steps = self.window_samples = 0
        self.window_started = now
        if not self.is_main:
            return
        group = trainer.optimizer.param_groups[0]
        lr = group["lr"] / group.get("lr_scale", 1.0)
        step = trainer.step
        norms = self.norms.norms()
        self.system.sample_gpu()
        self.recorder.log_scalars({"step/train_loss": loss, "step/lr": lr, "step/samples_per_second": rate,
                                   **norms}, step)
        histograms = self.settings.histograms_every_steps
        if histograms and step % histograms == 0:
            self.recorder.log_histograms(self.norms.histograms(), step)
        self.pending_steps.append({"step": step, "epoch": round(step / trainer.steps_per_epoch, 4),
                                   "train/loss": loss, "lr": lr, "grad_norm": norms.get("norms/grad_total", ""),
                                   "samples_per_second": round(rate, 1)})

    # -- epochs -----------------------------------------------------------------------------
    def epoch_end(self, row: dict[str, Any]) -> dict[str, float]:
        """The epoch's extra columns: ``val/macro_f1``, the time breakdown, the system figures."""
        extra: dict[str, float] = {}
        if self.confusion is not None:
            extra["val/macro_f1"] = round(per_class_scores(self.confusion)["macro_f1"], 6)
        extra.update(self.timer.take().columns())
        system = self.system.take()
        extra.update(system)
        self._warn_starved(system)
        return extra

    def _warn_starved(self, system: dict[str, float]) -> None:
        warning = oversubscription(system.get("system/cpu_wait_fraction"), system["system/cpu_cores_used"],
                                   torch.get_num_threads(), available_cores())
        if warning and not self.starved and self.is_main:
            self.log.warning("%s", warning)
        wait = system.get("system/cpu_wait_fraction")
        if warning or wait is None or wait < STARVED / 2:  # said once; said again only after it clearly cleared
            self.starved = warning is not None
        if self.system.gpu_note and self.is_main:
            self.log.warning("%s", self.system.gpu_note)
            self.system.gpu_note = ""  # said once; GPU utilisation stays off

    def after_epoch(self, row: dict[str, Any], final: bool) -> None:
        """Write the epoch's logged steps and per-class rows; draw the figures when due.

        Args:
            row: The epoch's metrics row (as recorded).
            final: Whether no epoch follows (the figures are drawn regardless of the schedule).
        """
        if not self.is_main:
            return
        self.recorder.record_steps(self.pending_steps)
        self.pending_steps = []
        epoch, step = int(row["epoch"]), int(row["step"])
        if self.confusion is not None:
            self._record_per_class(epoch, step)
        elapsed = time.perf_counter() - self.started
        if final or figures_due(epoch, self.settings.figures_every, self.figure_seconds, self.figure_cost, elapsed,
                                self.settings.figure_budget):
            self.draw(epoch, step)

    def _record_per_class(self, epoch: int, step: int) -> None:
        scores = per_class_scores(self.confusion)
        rows, scalars = [], {}
        for label, name in enumerate(self.class_names):
            values = {key: float(scores[key][label]) for key in ("precision", "recall", "f1")}
            rows.append({"epoch": epoch, "class": label, "name": name, **{k: round(v, 6) for k, v in values.items()},
                         "support": int(scores["support"][label])})
            if scores["support"][label] > 0:
                scalars |= {f"val_class/{key}/{tag_name(label, name)}": values[key] for key in ("recall", "f1")}
        self.recorder.record_per_class(rows)
        self.recorder.log_scalars(scalars, step)

    def draw(self, epoch: int, step: int) -> None:
        """Draw the confusion matrix, the most-wrong grid and ``curves.png`` for ``epoch`` (main process)."""
        if not self.is_main or self.drawn_epoch == epoch:
            return
        started = time.perf_counter()
        folder = self.recorder.folder
        if self.confusion is not None:
            image = confusion_image(self.confusion, self.class_names,
                                    f"validation confusion matrix, epoch {epoch} (rows: true, columns: predicted)")
            self.recorder.log_image("val/confusion_matrix", image, step, folder.samples_dir / "confusion.png")
        worst = self.worst
        if worst is not None:
            grid = image_grid(worst.images, worst.captions(self.class_names),
                              f"validation images the model gets most wrong, epoch {epoch} (confidence of the mistake)")
            self.recorder.log_image("val/most_wrong", grid, step, folder.samples_dir / "val_worst.png")
        self._draw_curves()
        self.drawn_epoch = epoch
        self.figure_cost = time.perf_counter() - started
        self.figure_seconds += self.figure_cost

    def _draw_curves(self) -> None:
        folder = self.recorder.folder
        history = folder.read_metrics()
        best = folder.best() if history else None
        image = curves_image(history, folder.read_steps(), folder.read_per_class(), best, self.class_names,
                             f"run {folder.name}")
        self.recorder.write_figure(folder.curves_path, image)  # the trackers get it as a file when the run ends

    def run_end(self, epoch: int, step: int) -> None:
        """At the end of the run: write what is pending, draw the last epoch's figures if they were skipped,
        and report a profile that the run's end cut short."""
        if self.profiler is not None and self.profiler.report is None:
            report = self.profiler.finish()
            if report is not None and self.is_main:
                self.log.info("%s", report.text())
        if not self.is_main:
            return
        try:
            self.recorder.record_steps(self.pending_steps)
            self.pending_steps = []
            if epoch > 0:
                self.draw(epoch, step)
        except Exception as exc:  # the run's own end (and its error, if any) matters more than its figures
            self.log.warning("the last figures could not be drawn: %s: %s", type(exc).__name__, exc)
