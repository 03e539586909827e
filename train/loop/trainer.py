"""The model being trained: network, optimiser, mixed precision, augmentation and schedule position.

A :class:`Trainer` is complete once constructed. Its public steps are
:meth:`Trainer.train_step` (one optimiser step), :meth:`Trainer.epoch_steps` (the
steps of one epoch, one at a time, then :meth:`EpochSteps.finish`),
:meth:`Trainer.train_epoch` (a whole epoch at once) and :meth:`Trainer.validate`. The
run loop (:mod:`train.loop.run_loop`) calls the run's hooks between them; the
learning-rate finder and the benchmarks use them without hooks. The phases of each
step are timed by :attr:`Trainer.timer` (:mod:`train.loop.phase_timer`; a disabled
one unless the run gives its own).

Shuffling and dropout are seeded per epoch from ``(config.seed, epoch)``, each batch's
augmentation from ``(config.seed, epoch, batch, rank)``, and the schedule is a pure
function of the step, so restoring :meth:`Trainer.training_state` (with the position
inside the epoch, :class:`train.loop.epoch.EpochProgress`) continues bit for bit on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from common.errors import UserError
from common.paths import display_path, model_dir
from networks import ImageClassifier, build_network
from networks.checkpoint import LoadReport, load_weights, read_state_dict
from networks.config import NetworkConfig
from train.loop.augment import BatchAugment
from train.config import TrainConfig
from train.data.loading import TrainingData, epoch_order, epoch_seed, iterate_batches, steps_per_epoch
from train.process.distributed import Processes, all_reduce_sum, average_buffers
from train.loop.epoch import EpochBar, EpochProgress, epoch_metrics, reduce_metrics, training_batches
from train.loop.finetune import BackboneFreezer, WeightAverage
from train.loop.hooks import Step, ValidationBatch
from train.loop.optim import build_optimizer, lr_factor
from train.loop.phase_timer import PhaseTimer

CHECK_EVERY = 20
"""Optimiser steps between checks for a non-finite loss (and progress-bar updates)."""


class DivergedError(Exception):
    """The loss became NaN or infinite."""


class Trainer:
    """Network, optimiser and data of one training process, ready to step.

    Args:
        config: The training config.
        network_config: The network to build.
        data: The training and validation splits.
        processes: This process's rank and the world size.
        device: The training device.
        timer: Times the phases of each step (a disabled one, which measures nothing, by default).
    """

    def __init__(self, config: TrainConfig, network_config: NetworkConfig, data: TrainingData,
                 processes: Processes, device: torch.device, timer: PhaseTimer | None = None):
        self.config = config
        self.network_config = network_config
        self.data = data
        self.processes = processes
        self.device = device
        keep_on_device(data, device, config.data.keep_on_gpu, config.data.gpu_memory_fraction)
        torch.manual_seed(config.seed)  # the network's initial weights
        self.network: ImageClassifier = build_network(network_config).to(device)
        if config.channels_last:
            self.network.to(memory_format=torch.channels_last)
        self.freezer = BackboneFreezer(self.network, config.finetune.freeze_backbone_epochs)
        self.freezer.update(0)
        self.model = wrap(self.network, self.processes, self.device, self.config.compile)
        self.optimizer = build_optimizer(self.network, config.optim, config.finetune.backbone_lr_scale)
        self.average = WeightAverage(self.network, config.finetune.ema_decay) if config.finetune.ema_decay else None
        self.amp_dtype: torch.dtype | None = None
        if config.amp and device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.augment = BatchAugment(config.augment)
        self.steps_per_epoch = steps_per_epoch(len(data.train), config.batch_size, processes.world_size)
        self.epoch = 0
        self.step = 0
        self.position: EpochProgress | None = None
        self.timer = timer if timer is not None else PhaseTimer(enabled=False)

    def load_initial_weights(self, weights: str, mode: str, key: str = "init.weights") -> tuple[Path, LoadReport]:
        """Load initial weights (a checkpoint, a state dict or a safetensors file in ``model/`` or a path).

        Args:
            weights: The file, relative to the model folder or the working directory, or absolute.
            mode: ``strict``, ``partial`` or ``pretrained`` (see :func:`networks.checkpoint.load_weights`).
            key: The setting that named the file, for messages.

        Returns:
            The file and the load report.

        Raises:
            UserError: When the file is missing, unreadable, or (per ``mode``) does not match.
        """
        path = _weights_path(weights, key)
        report = load_weights(self.network, read_state_dict(path), mode=mode, source=display_path(path))
        return path, report

    def train_mode(self) -> None:
        """Put the model in training mode (a frozen backbone's batch-norm layers stay in evaluation mode)."""
        self.model.train()
        self.freezer.hold_statistics()

    def learning_rate(self) -> float:
        """The scheduled learning rate of the next step."""
        return self.config.optim.lr * lr_factor(self.step, self.steps_per_epoch, self.config)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, lr: float | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on an (already augmented) batch; advances :attr:`step`.

        Args:
            images: ``(B, C, H, W)``, values 0..255, on the device.
            labels: ``(B,)`` class indices, on the device.
            lr: The learning rate; the schedule's when None.

        Returns:
            ``(loss, logits)``: the batch's mean loss ``()`` and logits ``(B, K)``.
        """
        lr = self.learning_rate() if lr is None else lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        timer = self.timer
        with timer.phase("forward"):
            if self.config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                logits = self.model(images)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.config.optim.label_smoothing)
        with timer.phase("backward"):
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
        with timer.phase("optimizer"):
            if self.config.optim.grad_clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.config.optim.grad_clip_norm)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            if self.average is not None:
                self.average.update(self.network)
        self.step += 1
        return loss, logits

    def epoch_steps(self, progress: bool = False) -> EpochSteps:
        """The optimiser steps of (the rest of) epoch ``epoch + 1``, from :attr:`position` (None: its start).

        Args:
            progress: Show a progress bar (main process, terminal only).
        """
        return EpochSteps(self, progress)

    def train_epoch(self, progress: bool = False) -> dict[str, float]:
        """Train the rest of the epoch at once (no hooks) and return its metrics (:meth:`EpochSteps.finish`)."""
        with self.epoch_steps(progress) as steps:
            for images, labels in steps:
                steps.step(images, labels)
            return steps.finish()

    def validate(self, each_batch: Callable[[ValidationBatch], None] | None = None) -> dict[str, float]:
        """Loss and accuracy on the validation split (shared out over the processes), of the averaged
        weights when ``finetune.ema_decay`` is set.

        Args:
            each_batch: Called with every validation batch (the run's hooks).

        Raises:
            DivergedError: When the validation loss is NaN or infinite.
        """
        with self.timer.phase("validation"):
            metrics = self._validate(each_batch)
        if not math.isfinite(metrics["val/loss"]):
            raise DivergedError(f"the validation loss is {metrics['val/loss']} after epoch {self.epoch}")
        return metrics

    @torch.no_grad()
    def _validate(self, each_batch: Callable[[ValidationBatch], None] | None) -> dict[str, float]:
        network = self.evaluated_network
        network.eval()
        val = self.data.val
        order = epoch_order(len(val), 0, 0, shuffle=False)[self.processes.rank::self.processes.world_size]
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss sum, correct, seen
        for images, labels in iterate_batches(val, order, 2 * self.config.batch_size, self.config.data.num_workers,
                                              drop_singleton=False, pin=self.device.type == "cuda"):
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            with self._autocast():
                logits = network(images).float()
            totals += torch.stack([F.cross_entropy(logits, labels, reduction="sum").double(),
                                   (logits.argmax(dim=1) == labels).sum().double(),
                                   torch.tensor(float(len(labels)), dtype=torch.float64, device=self.device)])
            if each_batch is not None:
                each_batch(ValidationBatch(images, labels, logits))
        return reduce_metrics({"val/loss": (totals[0], totals[2]), "val/accuracy": (totals[1], totals[2])},
                              self.processes)

    @property
    def evaluated_network(self) -> ImageClassifier:
        """The weights that are validated, kept as ``best.pt`` and exported: the averaged ones with EMA."""
        return self.average.network if self.average is not None else self.network

    def training_state(self) -> dict[str, Any]:
        """What a checkpoint needs to continue exactly from here (weights, optimiser, schedule, RNG).

        ``model`` holds the evaluated weights (the average with EMA, which deployment
        exports); with EMA the trained weights are under ``model_raw`` and the
        average's bookkeeping under ``ema``.
        """
        averaged = {} if self.average is None else {"model_raw": self.network.state_dict(),
                                                    "ema": self.average.state_dict()}
        return {
            "model": self.evaluated_network.state_dict(),
            **averaged,
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"name": self.config.schedule.name, "step": self.step, "steps_per_epoch": self.steps_per_epoch},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []},
        }

    def restore(self, checkpoint: dict[str, Any], source: str) -> None:
        """Continue from a checkpoint written from :meth:`training_state`, at its end of an epoch or inside one.

        Raises:
            UserError: When the checkpoint does not fit this run (EMA, or a position inside an
                epoch with another number of processes or steps per epoch).
        """
        if self.average is not None:
            if "model_raw" not in checkpoint:
                raise UserError(f"{source}: written without finetune.ema_decay, so it cannot resume with it")
            load_weights(self.network, checkpoint["model_raw"], mode="strict", source=source)
            self.average.load(checkpoint["model"], checkpoint["ema"])
        else:
            load_weights(self.network, checkpoint["model"], mode="strict", source=source)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scaler is not None and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.epoch, self.step = checkpoint["epoch"], checkpoint["step"]
        self.position = None
        if checkpoint.get("position"):  # written inside an epoch
            self.position = EpochProgress.from_state(checkpoint["position"], self.processes, self.device,
                                                     self.steps_per_epoch, source)
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if self.device.type == "cuda" and checkpoint["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def check_finite(self, loss_sum: torch.Tensor) -> None:
        """Raise :class:`DivergedError` when the loss sum is not finite on any process."""
        bad = torch.logical_not(torch.isfinite(loss_sum)).to(torch.float64).reshape(1)  # () -> (1,)
        if all_reduce_sum(bad, self.processes).item() > 0:
            raise DivergedError(f"the loss became {loss_sum.item()} in epoch {self.epoch + 1} (by step {self.step})")


class EpochSteps:
    """The optimiser steps of one epoch, one at a time (:meth:`Trainer.epoch_steps`); a context manager.

    Iterating gives the epoch's batches (each wait for one timed as ``data_wait``);
    :meth:`step` trains on one; :meth:`finish` ends a complete epoch. Leaving the block
    before :meth:`finish` (a stop) leaves :attr:`Trainer.position` where the epoch stands,
    with this start's training time added, so a checkpoint written then continues exactly.

    Args:
        trainer: The trainer.
        progress: Show a progress bar (main process, terminal only).
    """

    def __init__(self, trainer: Trainer, progress: bool):
        self.trainer = trainer
        if trainer.position is None:
            torch.manual_seed(epoch_seed(trainer.config.seed, trainer.epoch))  # dropout, anything drawing from it
            trainer.position = EpochProgress.start(trainer.epoch, trainer.device)
        self.position = trainer.position
        if trainer.freezer.update(trainer.epoch):
            # DistributedDataParallel must see which parameters train
            trainer.model = wrap(trainer.network, trainer.processes, trainer.device, trainer.config.compile)
        trainer.train_mode()
        self.bar = EpochBar(progress and trainer.processes.is_main, trainer.epoch, trainer.config.epochs,
                            trainer.steps_per_epoch, self.position, trainer.processes.world_size)
        self.batches = training_batches(trainer.data.train, trainer.config, trainer.augment, trainer.device,
                                        trainer.processes, trainer.epoch, self.position.done)
        self.waits = trainer.timer.batches(self.batches)  # times the wait for each prepared batch
        self.seconds: float | None = None

    def __enter__(self) -> EpochSteps:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.waits

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> Step:
        """One optimiser step on a batch of this epoch; every :data:`CHECK_EVERY` steps the loss is checked.

        Raises:
            DivergedError: When the loss became NaN or infinite on any process.
        """
        trainer, position = self.trainer, self.position
        lr = trainer.learning_rate()
        loss, logits = trainer.train_step(images, labels, lr)
        position.add(loss, logits, labels, lr)
        checking = trainer.step % CHECK_EVERY == 0
        if checking:
            trainer.check_finite(position.loss_sum)
        self.bar.update(position, postfix=checking)
        return Step(images, labels, loss, logits, lr, trainer.step, position.done,
                    position.done == trainer.steps_per_epoch)

    def close(self) -> float:
        """Stop reading batches and close the bar, adding this start's training time to the position (once)."""
        if self.seconds is None:
            self.waits.close()
            close = getattr(self.batches, "close", None)
            if close is not None:
                close()
            self.seconds = self.bar.close(self.position)
        return self.seconds

    def finish(self) -> dict[str, float]:
        """End the complete epoch: its metrics over every process (advancing :attr:`Trainer.epoch`).

        Raises:
            DivergedError: When the loss became NaN or infinite (the epoch is not counted).
        """
        trainer = self.trainer
        seconds = self.close()
        trainer.check_finite(self.position.loss_sum)
        row = epoch_metrics(self.position, seconds, trainer.processes)
        for network in {id(n): n for n in (trainer.network, trainer.evaluated_network)}.values():
            average_buffers(network, trainer.processes)
        trainer.epoch, trainer.position = trainer.epoch + 1, None
        return row


def wrap(network: ImageClassifier, processes: Processes, device: torch.device, compile: bool) -> torch.nn.Module:
    """The network as trained: under DistributedDataParallel and ``torch.compile`` when they apply."""
    model: torch.nn.Module = network
    if processes.distributed:
        ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(network, device_ids=ids)
    return torch.compile(model) if compile else model


def keep_on_device(data: TrainingData, device: torch.device, keep_on_gpu: str, fraction: float) -> None:
    """Move in-memory splits to the GPU (uint8) when ``keep_on_gpu`` says so (``auto``: when they
    take at most ``fraction`` of the free GPU memory). A no-op on the CPU."""
    if device.type != "cuda" or keep_on_gpu == "never":
        return
    for split in (data.train, data.val):
        if split.images is None or split.images.is_cuda:
            continue
        free, _ = torch.cuda.mem_get_info(device)
        if keep_on_gpu == "always" or split.images.numel() <= fraction * free:
            split.images, split.labels = split.images.to(device), split.labels.to(device)
            split.source += ", on the GPU"


def _weights_path(weights: str, key: str) -> Path:
    candidate = Path(weights)
    for path in ([candidate] if candidate.is_absolute() else [model_dir() / candidate, candidate]):
        if path.is_file():
            return path
    raise UserError(f"{key}: {weights!r} not found (looked in {display_path(model_dir())} and the working "
                    "directory); docs/training.md#pretrained-backbones says how to fetch weights into model/")
