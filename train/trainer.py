"""The model being trained: network, optimiser, mixed precision, augmentation and schedule position.

A :class:`Trainer` is complete once constructed. Its public steps are
:meth:`Trainer.train_step` (one optimiser step), :meth:`Trainer.train_epoch` (one
epoch, advancing :attr:`Trainer.epoch`) and :meth:`Trainer.validate`; the run loop
(train/loop.py), the learning-rate finder and the benchmark use nothing else. Each step's
phases are timed by, and each step and validation batch reported to,
:attr:`Trainer.observer` (train/observer.py; a run's is :class:`train.watch.Watch`).

Randomness is seeded per epoch from ``(config.seed, epoch)`` (shuffle, augmentation,
dropout) and the schedule is a pure function of the step, so restoring
:meth:`Trainer.training_state` continues bit for bit on the CPU.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from common.errors import UserError
from common.paths import display_path, model_dir
from networks import ImageClassifier, build_network
from networks.checkpoint import LoadReport, load_weights, read_state_dict
from networks.config import NetworkConfig
from train.augment import BatchAugment
from train.config import TrainConfig
from train.data import TrainingData, epoch_order, epoch_seed, iterate_batches, steps_per_epoch
from train.distributed import Processes, all_reduce_sum, average_buffers
from train.finetune import BackboneFreezer, WeightAverage
from train.observer import Observer
from train.optim import build_optimizer, lr_factor

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
    """

    def __init__(self, config: TrainConfig, network_config: NetworkConfig, data: TrainingData,
                 processes: Processes, device: torch.device):
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
        self.model = self._wrap()
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
        self.observer = Observer()  # a run's train.watch.Watch replaces it

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
        timer = self.observer.timer
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

    def train_epoch(self, progress: bool = False) -> dict[str, float]:
        """Train epoch ``epoch + 1``; on success advance :attr:`epoch` and return its metrics.

        Raises:
            DivergedError: When the loss becomes NaN or infinite (the epoch is not counted).
        """
        config, device = self.config, self.device
        seed = epoch_seed(config.seed, self.epoch)
        torch.manual_seed(seed)  # dropout and anything else drawing from the global generator
        generator = torch.Generator(device=device).manual_seed(seed + 1)  # augmentation
        order = epoch_order(len(self.data.train), config.seed, self.epoch, shuffle=True,
                            rank=self.processes.rank, world_size=self.processes.world_size)
        if self.freezer.update(self.epoch):
            self.model = self._wrap()  # DistributedDataParallel must see which parameters train
        self.train_mode()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        started = time.perf_counter()
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {self.epoch + 1}/{config.epochs}", unit="batch",
                   leave=False, dynamic_ncols=True,
                   disable=None if (progress and self.processes.is_main) else True)  # None: TTY only
        lr = self.learning_rate()
        run_steps_left = (config.epochs - self.epoch) * self.steps_per_epoch  # to the end of the run, from here
        batches = iterate_batches(self.data.train, order, config.batch_size, config.data.num_workers,
                                  drop_singleton=True, pin=device.type == "cuda")
        timer = self.observer.timer
        for done, (images, labels) in enumerate(timer.batches(batches), 1):  # times the wait for each batch
            with timer.phase("copy"):
                images = images.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
            lr = self.learning_rate()
            with timer.phase("augment"):
                images = self.augment(images, generator)
            loss, logits = self.train_step(images, labels, lr)
            self.observer.step_end(self, images, labels, loss, logits)
            loss_sum += loss.detach().double() * len(labels)  # in place, no allocation per step
            correct += (logits.detach().argmax(dim=1) == labels).sum()
            seen += len(labels)
            bar.update(1)
            if self.step % CHECK_EVERY == 0:
                self._check_finite(loss_sum)
                elapsed = time.perf_counter() - started
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}",
                                samples_s=f"{seen * self.processes.world_size / elapsed:.0f}",
                                run_eta=tqdm.format_interval((run_steps_left - done) * elapsed / done))
        bar.close()
        self._check_finite(loss_sum)
        totals = all_reduce_sum(torch.stack([loss_sum, correct.double(), torch.tensor(
            float(seen), dtype=torch.float64, device=device)]), self.processes)  # loss sum, correct, seen
        for network in {id(n): n for n in (self.network, self.evaluated_network)}.values():
            average_buffers(network, self.processes)
        elapsed = time.perf_counter() - started
        self.epoch += 1
        return {"lr": lr, "train/loss": totals[0].item() / totals[2].item(),
                "train/accuracy": totals[1].item() / totals[2].item(), "epoch_seconds": round(elapsed, 3),
                "samples_per_second": round(totals[2].item() / elapsed, 1)}

    def validate(self) -> dict[str, float]:
        """Loss and accuracy on the validation split (shared out over the processes), of the
        averaged weights when ``finetune.ema_decay`` is set; each batch is shown to the observer."""
        with self.observer.timer.phase("validation"):
            return self._validate()

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
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
            self.observer.val_batch(images, labels, logits)
        totals = all_reduce_sum(totals, self.processes)
        self.observer.val_end(self.processes)
        return {"val/loss": totals[0].item() / totals[2].item(), "val/accuracy": totals[1].item() / totals[2].item()}

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
        """Continue from a checkpoint written from :meth:`training_state`."""
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
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if self.device.type == "cuda" and checkpoint["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])

    def _wrap(self) -> torch.nn.Module:
        model: torch.nn.Module = self.network
        if self.processes.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = torch.nn.parallel.DistributedDataParallel(self.network, device_ids=ids)
        return torch.compile(model) if self.config.compile else model

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def _check_finite(self, loss_sum: torch.Tensor) -> None:
        bad = torch.logical_not(torch.isfinite(loss_sum)).to(torch.float64).reshape(1)  # () -> (1,)
        if all_reduce_sum(bad, self.processes).item() > 0:
            raise DivergedError(f"the loss became {loss_sum.item()} in epoch {self.epoch + 1} (by step {self.step})")


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
