"""The parts of a training epoch that make it resumable at any optimiser step.

:meth:`train.loop.trainer.Trainer.train_epoch` runs the optimiser steps of an epoch from
wherever it stands (:class:`EpochProgress`: steps done, this process's running loss
and accuracy sums), asking a callback after every step whether to stop there. The
next batch is read and augmented in a thread while the current one trains
(:func:`training_batches`).

Everything random is a pure function of the run's state at a step boundary: the
sample order of ``(seed, epoch)`` (:func:`train.data.loading.epoch_order`), each batch's
augmentation of ``(seed, epoch, batch, rank)`` (:func:`train.data.loading.batch_seed`), and
dropout of the global generator, seeded at the start of each epoch and saved with
the checkpoint. So an epoch stopped after step k and resumed from a checkpoint
continues exactly as if it had not stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from common.errors import UserError
from train.loop.augment import BatchAugment
from train.config import TrainConfig
from train.data.loading import Batch, SplitData, batch_seed, epoch_order, iterate_batches, prefetched
from train.metrics import metric_spec
from train.process.distributed import Processes, all_gather, all_reduce_sum


@dataclass
class EpochProgress:
    """Where training stands inside the epoch ``epoch + 1``.

    Attributes:
        epoch: Epochs completed before this one (the trainer's ``epoch``).
        done: Optimiser steps of this epoch done.
        loss_sum: This process's sum of per-sample losses so far, float64 ``()`` on the device.
        correct: This process's correct predictions so far, int64 ``()`` on the device.
        seen: This process's samples so far.
        seconds: Training time of this epoch spent before the current start (a resumed epoch).
        lr: Learning rate of the last step.
    """

    epoch: int
    done: int
    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    seconds: float = 0.0
    lr: float = 0.0

    @classmethod
    def start(cls, epoch: int, device: torch.device) -> EpochProgress:
        """The progress of an epoch that has not begun."""
        return cls(epoch, 0, torch.zeros((), dtype=torch.float64, device=device),
                   torch.zeros((), dtype=torch.int64, device=device))

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, lr: float) -> None:
        """Count one optimiser step's batch (in place on the device: no synchronisation)."""
        self.loss_sum += loss.detach().double() * len(labels)
        self.correct += (logits.detach().argmax(dim=1) == labels).sum()
        self.seen += len(labels)
        self.done += 1
        self.lr = lr

    def state_dict(self, processes: Processes, steps_per_epoch: int) -> dict[str, Any]:
        """What a checkpoint stores of it; every process must call it (the sums of all are gathered).

        ``sums`` is float64 ``(world_size, 3)``: each process's loss sum, correct count
        and samples, so that each continues from exactly its own sums.
        """
        mine = torch.stack([self.loss_sum, self.correct.double(), torch.tensor(
            float(self.seen), dtype=torch.float64, device=self.loss_sum.device)])  # 3 x () -> (3,)
        sums = torch.stack(all_gather(mine, processes)).cpu()  # world_size x (3,) -> (world_size, 3)
        return {"epoch": self.epoch, "step_in_epoch": self.done, "steps_per_epoch": steps_per_epoch,
                "world_size": processes.world_size, "sums": sums, "seconds": self.seconds, "lr": self.lr}

    @classmethod
    def from_state(cls, state: dict[str, Any], processes: Processes, device: torch.device, steps_per_epoch: int,
                   source: str) -> EpochProgress:
        """This process's progress from a checkpoint's ``position``.

        Raises:
            UserError: When the run now has another number of processes or steps per
                epoch than when the checkpoint was written.
        """
        if state["world_size"] != processes.world_size or state["steps_per_epoch"] != steps_per_epoch:
            raise UserError(
                f"{source} was written inside epoch {state['epoch'] + 1} (step {state['step_in_epoch']} of "
                f"{state['steps_per_epoch']}) by {state['world_size']} process(es); it continues only with the same "
                f"number of processes and steps per epoch (now {processes.world_size} and {steps_per_epoch}): "
                "same torchrun process count, batch_size and data")
        loss_sum, correct, seen = state["sums"][processes.rank].tolist()
        return cls(state["epoch"], state["step_in_epoch"], torch.tensor(loss_sum, dtype=torch.float64, device=device),
                   torch.tensor(int(correct), dtype=torch.int64, device=device), int(seen), state["seconds"],
                   state["lr"])


class EpochBar:
    """The progress bar of one epoch and its clock (training time only, from where the epoch stands).

    Args:
        progress: Show the bar (on a terminal).
        epoch: Epochs completed before this one.
        epochs: Epochs of the run.
        steps_per_epoch: Optimiser steps in an epoch.
        position: Where the epoch stands.
        world_size: Number of processes (for samples per second).
    """

    def __init__(self, progress: bool, epoch: int, epochs: int, steps_per_epoch: int, position: EpochProgress,
                 world_size: int):
        self.started, self.first, self.world_size = time.perf_counter(), position.done, world_size
        self.run_steps_left = (epochs - epoch) * steps_per_epoch - position.done  # from this start
        self.bar = tqdm(total=steps_per_epoch, initial=position.done, desc=f"epoch {epoch + 1}/{epochs}",
                        unit="batch", leave=False, dynamic_ncols=True,
                        disable=None if progress else True)  # None: TTY only

    def update(self, position: EpochProgress, postfix: bool) -> None:
        """Count a step; with ``postfix`` also show the running loss, speed and the run's time left."""
        self.bar.update(1)
        if postfix:
            elapsed, done = time.perf_counter() - self.started, position.done - self.first
            self.bar.set_postfix(
                loss=f"{position.loss_sum.item() / position.seen:.4f}",
                samples_s=f"{position.seen * self.world_size / (elapsed + position.seconds):.0f}",
                run_eta=tqdm.format_interval((self.run_steps_left - done) * elapsed / done))

    def close(self, position: EpochProgress) -> float:
        """Close the bar and add this start's training time to ``position``; returns the epoch's time so far."""
        self.bar.close()
        position.seconds += time.perf_counter() - self.started
        return position.seconds


def epoch_metrics(position: EpochProgress, seconds: float, processes: Processes) -> dict[str, float]:
    """The finished epoch's row: the last learning rate, loss and accuracy over every process, time and speed."""
    seen = torch.tensor(float(position.seen), dtype=torch.float64, device=position.loss_sum.device)
    row = reduce_metrics({"lr": (position.lr, 1.0), "train/loss": (position.loss_sum, seen),
                          "train/accuracy": (position.correct.double(), seen),
                          "epoch_seconds": (round(seconds, 3), 1.0),
                          "samples_per_second": (position.seen / seconds, 1.0)}, processes)
    row["samples_per_second"] = round(row["samples_per_second"], 1)
    return row


def reduce_metrics(partials: Mapping[str, tuple[Any, Any]], processes: Processes) -> dict[str, float]:
    """Declared metrics (:mod:`train.metrics`) from this process's part of each, combined as each is declared.

    Args:
        partials: Metric name -> ``(total, count)`` on this process (numbers or 0-d tensors): the metric is
            ``total / count`` after the ``mean`` reduction (both summed over the processes first), ``total``
            summed over the processes for ``sum``, and this process's ``total / count`` for ``global`` and
            ``main`` (already the same everywhere, or the main process's own).
        processes: This process's rank and the world size (every process calls it: one all-reduce in all).

    Raises:
        KeyError: For a metric no declaration names.
    """
    specs = {name: metric_spec(name) for name in partials}
    reduced = [name for name, spec in specs.items() if spec.reduce in ("mean", "sum")]
    device = next((value.device for pair in partials.values() for value in pair if isinstance(value, torch.Tensor)),
                  torch.device("cpu"))
    sums: list[float] = []
    if reduced:
        parts = [torch.as_tensor(part, dtype=torch.float64, device=device).reshape(())
                 for name in reduced for part in partials[name]]  # 2 per metric: total, count
        sums = all_reduce_sum(torch.stack(parts), processes).tolist()  # 2M x () -> (2M,)
    out: dict[str, float] = {}
    for name, spec in specs.items():
        if name in reduced:
            total, count = sums[2 * reduced.index(name)], sums[2 * reduced.index(name) + 1]
            value = total / count if spec.reduce == "mean" else total
        else:
            total, count = (float(part) for part in partials[name])
            value = total / count
        out[name] = value
    return out


def training_batches(split: SplitData, config: TrainConfig, augment: BatchAugment, device: torch.device,
                     processes: Processes, epoch: int, start: int) -> Iterator[Batch]:
    """The batches of epoch ``epoch + 1`` (0-based ``epoch``) from batch ``start`` on, on the device, augmented.

    With augmentation on, the next batch is read and augmented in a thread while the
    current one trains (torch operations release the GIL; on the CPU that thread uses
    one intra-op thread, leaving the cores to training); its randomness comes from
    its own generator, seeded by :func:`train.data.loading.batch_seed`, never from the global
    one that dropout draws from.
    """
    rank = processes.rank
    order = epoch_order(len(split), config.seed, epoch, shuffle=True, rank=rank, world_size=processes.world_size)
    batches = iterate_batches(split, order, config.batch_size, config.data.num_workers, drop_singleton=True,
                              pin=device.type == "cuda", start=start)

    def prepared(in_thread: bool) -> Iterator[Batch]:
        if in_thread and device.type == "cuda":
            torch.cuda.set_device(device)  # the current device is per thread
        elif in_thread:
            # One intra-op thread for this thread's operations (OpenMP's count is per thread): with
            # torch's default it started a second team as large as the training threads' and they
            # fought for the cores (bench train, photo augmentation: 0.82-0.83 of the bare loop
            # before, 0.89-0.99 after)
            torch.set_num_threads(1)
        for index, (images, labels) in enumerate(batches, start):
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            if augment.enabled:
                generator = torch.Generator(device=device).manual_seed(batch_seed(config.seed, epoch, index, rank))
                images = augment(images, generator)
            yield images, labels

    return prefetched(prepared(in_thread=True)) if augment.enabled else prepared(in_thread=False)
