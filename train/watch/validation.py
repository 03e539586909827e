"""Watching validation: per-class scores, macro F1, the confusion matrix, the images the model gets most wrong.

:class:`ValidationTally` adds each validation batch on the device (no synchronisation
per batch); :meth:`ValidationTally.finish` sums the confusion matrix over the processes
under torchrun (the "most wrong" images are the main process's share). The scores
come from :mod:`common.scores`, which evaluation uses too.

:class:`ValidationWatchHook` adds ``val/macro_f1`` to each epoch's row, writes the
per-class precision, recall and F1 (``per_class.csv``, and recall and F1 per class to
the trackers), and every ``log.figures_every`` epochs, while drawing stays within
``log.figure_budget`` of the run's time (and always for the last epoch), draws the
confusion matrix, the validation images the model gets most wrong and ``curves.png``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from common.plotting import confusion_image
from common.run_folder import MetricSpec, RunStatus
from common.scores import macro_average, precision_recall_f1, support
from train.config import TrainConfig
from train.loop.hooks import Hook, RunState, ValidationBatch
from train.process.distributed import Processes, all_reduce_sum
from train.watch.plots import curves_image, image_grid
from train.watch.recorder import RunRecorder

FIRST_FIGURES_SECONDS = 0.9
"""What drawing an epoch's figures is expected to cost before it has been measured (about this, on a 2-core CPU)."""


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


@dataclass(frozen=True)
class WorstImages:
    """The validation images predicted wrong with the highest confidence, most confident first.

    Attributes:
        images: ``(N, C, H, W)`` uint8, as the network took them (before its normalisation).
        true: ``(N,)`` true labels.
        predicted: ``(N,)`` predicted labels.
        confidence: ``(N,)`` probability of the predicted label.
    """

    images: np.ndarray
    true: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray

    def captions(self, class_names: Sequence[str]) -> list[list[str]]:
        """``["true: <name>", "pred: <name> 0.97"]`` per image."""
        return [[f"true: {class_names[t]}", f"pred: {class_names[p]} {c:.2f}"]
                for t, p, c in zip(self.true, self.predicted, self.confidence)]


class ValidationTally:
    """Confusion matrix and the ``keep`` most confidently wrong images of one validation pass.

    Args:
        num_classes: Classes K.
        keep: Images to keep for the "most wrong" grid (0: none).
        device: Where the batches are.
    """

    def __init__(self, num_classes: int, keep: int, device: torch.device):
        self.num_classes, self.keep, self.device = num_classes, keep, device
        self.reset()

    def reset(self) -> None:
        """Start a new pass."""
        self.confusion = torch.zeros(self.num_classes * self.num_classes, dtype=torch.int64, device=self.device)
        self.pool: dict[str, torch.Tensor] | None = None
        self.result: np.ndarray | None = None

    def add(self, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> None:
        """One batch: images ``(B, C, H, W)``, labels ``(B,)``, logits ``(B, K)``."""
        predicted = logits.argmax(dim=1)
        self.confusion += torch.bincount(labels * self.num_classes + predicted,
                                         minlength=self.num_classes * self.num_classes)  # (B,) -> (K*K,)
        if self.keep == 0:
            return
        confidence = torch.softmax(logits.float(), dim=1).gather(1, predicted[:, None])[:, 0]  # (B, 1) -> (B,)
        score = torch.where(predicted != labels, confidence, torch.full_like(confidence, -1.0))
        batch = {"images": images, "true": labels, "predicted": predicted, "confidence": confidence, "score": score}
        if self.pool is not None:
            batch = {key: torch.cat([self.pool[key], value]) for key, value in batch.items()}
        top = torch.topk(batch["score"], min(self.keep, len(batch["score"]))).indices
        self.pool = {key: value.index_select(0, top) for key, value in batch.items()}

    def finish(self, processes: Processes) -> np.ndarray:
        """The pass's confusion matrix ``(K, K)`` (rows: true, columns: predicted), summed over the processes."""
        total = all_reduce_sum(self.confusion.double(), processes)
        self.result = total.long().cpu().numpy().reshape(self.num_classes, self.num_classes)  # (K*K,) -> (K, K)
        return self.result

    def worst(self) -> WorstImages | None:
        """The most confidently wrong images of this process's share (None when it got everything right)."""
        if self.pool is None:
            return None
        wrong = (self.pool["score"] >= 0).cpu()
        if not bool(wrong.any()):
            return None
        pick = {key: value.cpu()[wrong].numpy() for key, value in self.pool.items()}
        return WorstImages(pick["images"], pick["true"], pick["predicted"], pick["confidence"])


class ValidationWatchHook(Hook):
    """Per-class scores, macro F1 and the validation figures of each epoch (see the module docstring).

    Args:
        recorder: The run's recorder.
        config: The training config (``log.*``).
        class_names: The class names.
        device: The training device.
        metrics: The run's declared metrics (the panels of ``curves.png``).
    """

    name = "validation_watch"

    def __init__(self, recorder: RunRecorder, config: TrainConfig, class_names: list[str], device: torch.device,
                 metrics: Sequence[MetricSpec]):
        self.recorder, self.settings, self.class_names, self.metrics = recorder, config.log, class_names, metrics
        self.is_main = recorder.is_main
        self.tally = ValidationTally(len(class_names), self.settings.worst_images if self.is_main else 0, device)
        self.confusion: np.ndarray | None = None
        self.worst: WorstImages | None = None
        self.started = time.perf_counter()
        self.drawn_epoch = 0
        self.figure_seconds, self.figure_cost = 0.0, FIRST_FIGURES_SECONDS

    def after_validation_batch(self, run: RunState, batch: ValidationBatch) -> None:
        """Add the batch to the tally."""
        self.tally.add(batch.images, batch.labels, batch.logits)

    def after_validation(self, run: RunState) -> None:
        """Combine the processes' confusion matrices; ``val/macro_f1`` into the row; start the next pass afresh."""
        self.confusion = self.tally.finish(run.trainer.processes)
        self.worst = self.tally.worst()
        self.tally.reset()
        f1 = precision_recall_f1(self.confusion)[2]
        run.add_metrics({"val/macro_f1": round(macro_average(f1, support(self.confusion)), 6)})

    def after_epoch(self, run: RunState, row: dict[str, Any]) -> None:
        """The per-class rows; the figures when due."""
        if not self.is_main or self.confusion is None:
            return
        with run.timer.phase("logging"):
            epoch, step = int(row["epoch"]), int(row["step"])
            self._record_per_class(epoch, step)
            elapsed = time.perf_counter() - self.started
            if figures_due(epoch, self.settings.figures_every, self.figure_seconds, self.figure_cost, elapsed,
                           self.settings.figure_budget):
                self.draw(epoch, step)

    def after_run(self, run: RunState, status: RunStatus) -> None:
        """The last epoch's figures, when the schedule or the budget skipped them."""
        if not self.is_main or not run.history:
            return
        last = run.history[-1]
        try:
            self.draw(int(last["epoch"]), int(last["step"]))
        except Exception as exc:  # the run's own end (and its error, if any) matters more than its figures
            self.recorder.log.warning("the last figures could not be drawn: %s: %s", type(exc).__name__, exc)

    def _record_per_class(self, epoch: int, step: int) -> None:
        precision, recall, f1 = precision_recall_f1(self.confusion)
        counts = support(self.confusion)
        rows, scalars = [], {}
        for label, name in enumerate(self.class_names):
            values = {"precision": float(precision[label]), "recall": float(recall[label]), "f1": float(f1[label])}
            rows.append({"epoch": epoch, "class": label, "name": name, **{k: round(v, 6) for k, v in values.items()},
                         "support": int(counts[label])})
            if counts[label] > 0:
                scalars |= {f"val_class/{key}/{tag_name(label, name)}": values[key] for key in ("recall", "f1")}
        self.recorder.record_per_class(rows)
        self.recorder.log_scalars(scalars, step)

    def draw(self, epoch: int, step: int) -> None:
        """Draw the confusion matrix, the most-wrong grid and ``curves.png`` for ``epoch`` (once an epoch)."""
        if self.drawn_epoch == epoch or self.confusion is None:
            return
        started = time.perf_counter()
        folder = self.recorder.folder
        image = confusion_image(self.confusion, self.class_names,
                                f"validation confusion matrix, epoch {epoch} (rows: true, columns: predicted)")
        self.recorder.log_image("val/confusion_matrix", image, step, folder.samples_dir / "confusion.png")
        if self.worst is not None:
            grid = image_grid(self.worst.images, self.worst.captions(self.class_names),
                              f"validation images the model gets most wrong, epoch {epoch} (confidence of the mistake)")
            self.recorder.log_image("val/most_wrong", grid, step, folder.samples_dir / "val_worst.png")
        history = folder.read_metrics()
        best = folder.best() if history else None
        curves = curves_image(history, folder.read_steps(), folder.read_per_class(), best, self.class_names,
                              f"run {folder.name}", self.metrics)
        self.recorder.write_figure(folder.curves_path, curves)  # the trackers get it as a file when the run ends
        self.drawn_epoch = epoch
        self.figure_cost = time.perf_counter() - started
        self.figure_seconds += self.figure_cost
