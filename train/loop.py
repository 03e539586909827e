"""The training loop: :func:`train` starts a run, :func:`resume` continues one.

Both return a :class:`RunResult`. Randomness is seeded per epoch from
``(config.seed, epoch)`` (shuffle, augmentation, dropout), and the model, optimiser,
schedule step, RNG states and checkpoint / early-stopping bookkeeping are restored
on resume, so on the CPU a resumed run ends with the same weights, bit for bit, as
an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from common.digits import open_dataset
from common.dicts import describe_differences, differences
from common.errors import UserError
from common.files import file_sha256
from common.lists import Dataset
from common.runs import find_run
from common.paths import display_path, model_dir
from networks import ImageClassifier, build_network, load_network_config
from networks.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_network_config,
    load_weights,
    read_checkpoint,
    read_state_dict,
)
from networks.config import NetworkConfig, network_config_path
from train.augment import BatchAugment
from train.checkpoints import CheckpointKeeper, EarlyStopping
from train.config import (
    DEFAULT_CONFIG,
    LoadedConfig,
    TrainConfig,
    config_to_yaml,
    load_train_config,
)
from train.data import (
    SplitData,
    check_classes,
    epoch_order,
    epoch_seed,
    iterate_batches,
    load_split,
    steps_per_epoch,
)
from train.distributed import Processes, all_reduce_sum, barrier, broadcast, start_processes, stop_processes
from train.optim import build_optimizer, lr_factor
from train.rundir import (
    MetricsCsv,
    close_logging,
    create_run_dir,
    git_state,
    now,
    package_versions,
    setup_logging,
    write_json,
)
from train.summary import model_summary

CHECK_EVERY = 20
"""Optimiser steps between checks for a non-finite loss (and progress-bar updates)."""

RESUME_KEYS = ("optimizer", "scheduler", "epoch", "step", "rng", "checkpoint_keeper", "early_stopping", "history",
               "train_config")
"""Keys a checkpoint needs beyond the network to resume training from it."""


@dataclass(frozen=True)
class RunOptions:
    """Run-level options, given on the command line rather than in config files.

    Attributes:
        name: Run name prefix (default: the training config's file name, or the network's).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        dev: Train and validate on ``data.dev_split`` (a quick check that code runs).
        progress: Show a progress bar.
        on_epoch_end: Called with each epoch's metrics row after its checkpoint is
            saved; returning a string stops the run with that status (sweeps use
            ``"pruned"``). On the main process only its answer counts.
    """

    name: str | None = None
    device: str = "auto"
    dev: bool = False
    progress: bool = True
    on_epoch_end: Callable[[dict[str, Any]], str | None] | None = None


@dataclass(frozen=True)
class RunResult:
    """What a run did.

    Attributes:
        run_dir: The run folder.
        status: ``finished``, ``stopped_early``, ``diverged``, or what ``on_epoch_end`` returned.
        epochs_completed: Epochs finished (and checkpointed).
        best: ``{"epoch", "value", "metric"}`` of the best epoch, or None.
        metrics: The last epoch's metrics row.
        message: A sentence for the console.
    """

    run_dir: Path
    status: str
    epochs_completed: int
    best: dict[str, Any] | None
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""


class DivergedError(Exception):
    """The loss became NaN or infinite."""


def train(loaded: LoadedConfig | TrainConfig, options: RunOptions = RunOptions()) -> RunResult:
    """Start a new training run.

    Args:
        loaded: The config (from :func:`train.config.load_train_config`, or a bare
            :class:`TrainConfig`).
        options: Run-level options.

    Returns:
        The run's result; the run folder holds everything it wrote.

    Raises:
        UserError: For a problem with the config, the data or the initial weights.
    """
    if isinstance(loaded, TrainConfig):
        loaded = LoadedConfig(config=loaded)
    config = loaded.config.for_dev() if options.dev else loaded.config
    processes, device = start_processes(options.device)
    try:
        network_config = _pinned_network_config(loaded, config)
        trainer = Trainer(config, network_config, processes, device, options)
        trainer.load_data()
        trainer.build()
        if config.init.weights:
            trainer.init_weights(config.init.weights, config.init.mode)
        name = options.name or _default_name(loaded, network_config, options.dev)
        run_dir = broadcast(create_run_dir(name) if processes.is_main else None, processes)
        trainer.open_run(run_dir, resumed_from=None)
        return trainer.fit()
    finally:
        stop_processes()


def resume(run: str, overrides: Sequence[str] = (), allow_change: Sequence[str] = (),
           options: RunOptions = RunOptions()) -> RunResult:
    """Continue a run from its ``checkpoints/last.pt``, in the same run folder.

    Args:
        run: The run folder, its name under ``output/train``, or ``last``.
        overrides: ``key=value`` changes to the run's config.
        allow_change: Keys (or sections) that ``overrides`` may change, e.g.
            ``epochs``; any other difference is refused. ``network`` never changes.
        options: Run-level options (``name`` and ``dev`` do not apply).

    Returns:
        The run's result.

    Raises:
        UserError: When the run or its checkpoint is unusable, the config changed
            without ``allow_change``, or the run is already complete.
    """
    run_dir = find_run(run)
    original = load_train_config(run_dir / "config.yaml")
    loaded = load_train_config(run_dir / "config.yaml", overrides)
    changes = differences(original.config.to_dict(), loaded.config.to_dict())
    _check_changes(changes, allow_change, run_dir)
    checkpoint_path = run_dir / "checkpoints" / "last.pt"
    checkpoint = read_checkpoint(checkpoint_path)
    missing = [key for key in RESUME_KEYS if key not in checkpoint]
    if missing:
        raise UserError(f"{display_path(checkpoint_path)}: cannot resume from it, missing {missing}")
    if checkpoint["epoch"] >= loaded.config.epochs:
        raise UserError(
            f"{display_path(run_dir)} already completed {checkpoint['epoch']} of {loaded.config.epochs} epochs; to "
            f"train longer: --resume {run} epochs=<more> --allow-change epochs"
        )
    processes, device = start_processes(options.device)
    try:
        network_config = checkpoint_network_config(checkpoint, display_path(checkpoint_path))
        trainer = Trainer(loaded.config, network_config, processes, device, options)
        trainer.load_data()
        trainer.build()
        trainer.restore(checkpoint)
        trainer.open_run(run_dir, resumed_from={"epoch": checkpoint["epoch"], "changes": {
            key: {"from": a, "to": b} for key, (a, b) in changes.items()}})
        return trainer.fit()
    finally:
        stop_processes()


class Trainer:
    """The state of one run while it trains; used by :func:`train`, :func:`resume` and bench/."""

    def __init__(self, config: TrainConfig, network_config: NetworkConfig, processes: Processes,
                 device: torch.device, options: RunOptions):
        self.config = config
        self.network_config = network_config
        self.processes = processes
        self.device = device
        self.options = options
        self.log = logging.getLogger("train")
        self.augment = BatchAugment(config.augment)
        self.epoch = 0
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.run_dir: Path | None = None
        self.manifest: dict[str, Any] = {}
        self.pending_log: list[str] = []
        self.init_report: str | None = None
        self.keeper_state: dict[str, Any] | None = None

    # -- setup -------------------------------------------------------------------------
    def load_data(self) -> None:
        config, contract = self.config, self.network_config.input
        if self.processes.is_main:
            self.dataset: Dataset = open_dataset(config.data.dataset)
        barrier(self.processes)  # rank 0 may have prepared the bundled data set
        if not self.processes.is_main:
            self.dataset = open_dataset(config.data.dataset)
        check_classes(self.dataset, self.network_config.num_classes, self.network_config.name)
        data = config.data
        self.train_data: SplitData = load_split(self.dataset, data.train_split, contract, data.on_unreadable,
                                                data.in_memory)
        self.val_data: SplitData = load_split(self.dataset, data.val_split, contract, data.on_unreadable,
                                              data.in_memory)
        self.steps_per_epoch = steps_per_epoch(len(self.train_data), config.batch_size, self.processes.world_size)

    def build(self) -> None:
        torch.manual_seed(self.config.seed)
        self.network: ImageClassifier = build_network(self.network_config).to(self.device)
        self.model: torch.nn.Module = self.network
        if self.processes.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.network, device_ids=ids)
        self.optimizer = build_optimizer(self.network, self.config.optim)
        self.amp_dtype = None
        if self.config.amp and self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        ckpt = self.config.checkpoint
        self.keeper = CheckpointKeeper(Path("."), ckpt.monitor, ckpt.mode, ckpt.top_k)
        self.stopper = EarlyStopping(self.config.early_stopping.patience, self.config.early_stopping.min_delta,
                                     ckpt.mode)

    def init_weights(self, weights: str, mode: str) -> None:
        path = _weights_path(weights)
        report = load_weights(self.network, read_state_dict(path), mode=mode, source=display_path(path))
        self.init_report = f"initial weights from {display_path(path)} ({mode}): {report.summary()}"

    def restore(self, checkpoint: dict[str, Any]) -> None:
        load_weights(self.network, checkpoint["model"], mode="strict", source="last.pt")
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scaler is not None and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.epoch, self.step = checkpoint["epoch"], checkpoint["step"]
        self.history = list(checkpoint["history"])
        self.keeper_state = checkpoint["checkpoint_keeper"]
        self.stopper.load_state_dict(checkpoint["early_stopping"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if self.device.type == "cuda" and checkpoint["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])

    def open_run(self, run_dir: Path, resumed_from: dict[str, Any] | None) -> None:
        self.run_dir = run_dir
        self.keeper.folder = run_dir / "checkpoints"
        if self.keeper_state is not None:
            if self.processes.is_main:
                self.keeper.load_state_dict(self.keeper_state)
            else:
                self.keeper.best, self.keeper.kept = self.keeper_state["best"], self.keeper_state["kept"]
        self.log = setup_logging(run_dir, self.processes.is_main)
        self.metrics_csv = MetricsCsv(run_dir / "metrics.csv")
        self.writer = None
        if not self.processes.is_main:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=self.epoch if resumed_from else None)
        (run_dir / "config.yaml").write_text(
            f"# Resolved training config of run {run_dir.name}, written by `pipenv run train`.\n"
            f"# Repeat the run: pipenv run train --config {display_path(run_dir / 'config.yaml')}\n"
            + config_to_yaml(self.config, {"network_hash": self.network_config.hash,
                                           "network_config": self.network_config.to_dict()})
        )
        if resumed_from is None:
            self.manifest = self._new_manifest(run_dir)
        else:
            self.manifest = _read_json(run_dir / "manifest.json")
            self.manifest.setdefault("resumed", []).append({"at": now(), "command": sys.argv, **resumed_from})
            self.manifest.update(status="running", ended=None, host=socket.gethostname(), pid=os.getpid())
            self.metrics_csv.rewrite(self.history)
        write_json(run_dir / "manifest.json", self.manifest)
        verb = "resuming" if resumed_from else "run"
        self.log.info("%s %s (%s, %d process(es))", verb, display_path(run_dir), self.device,
                      self.processes.world_size)
        if resumed_from:
            self.log.info("continuing after epoch %d; config changes: %s", self.epoch,
                          resumed_from["changes"] or "none")
        if self.init_report:
            self.log.info("%s", self.init_report)
        self.log.info("network %s (%s), hash %s\n%s", self.network_config.name, self.network_config.arch.name,
                      self.network_config.hash[:12], model_summary(self.network, self.device))
        self.log.info("data %s: %s %d images, %s %d images; %d steps per epoch", display_path(self.dataset.root),
                      self.train_data.name, len(self.train_data), self.val_data.name, len(self.val_data),
                      self.steps_per_epoch)

    def _new_manifest(self, run_dir: Path) -> dict[str, Any]:
        lists = {}
        for data in (self.train_data, self.val_data):
            lists[data.name] = {"path": display_path(data.list_path), "sha256": file_sha256(data.list_path),
                                "samples": len(data)}
        return {
            "run": run_dir.name,
            "status": "running",
            "started": now(),
            "ended": None,
            "command": sys.argv,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "dev": self.options.dev,
            "device": str(self.device),
            "world_size": self.processes.world_size,
            "network": {"name": self.network_config.name, "hash": self.network_config.hash},
            "data": {"dataset": display_path(self.dataset.root), "classes": list(self.dataset.class_names),
                     "lists": lists},
            "git": git_state(run_dir),
            "packages": package_versions(),
            "result": None,
        }

    # -- loop --------------------------------------------------------------------------
    def fit(self) -> RunResult:
        status, message = "finished", ""
        try:
            while self.epoch < self.config.epochs:
                try:
                    train_metrics = self.train_epoch()
                except DivergedError as exc:
                    status = "diverged"
                    message = (f"training diverged: {exc}; stopped without saving this epoch. The last good "
                               f"checkpoint is {self._last_good()}. Lower optim.lr or set optim.grad_clip_norm.")
                    self.log.error("%s", message)
                    break
                row = {**train_metrics, **self._validate()}
                self.epoch += 1
                row = {"epoch": self.epoch, "step": self.step, **row}
                stop = self._end_epoch(row)
                requested = self._callback(row)
                if requested:
                    status, message = requested, f"stopped after epoch {self.epoch}: {requested}"
                    self.log.info("%s", message)
                    break
                if stop:
                    status = "stopped_early"
                    message = (f"early stopping: {self.config.checkpoint.monitor} did not improve by more than "
                               f"{self.config.early_stopping.min_delta} for {self.config.early_stopping.patience} "
                               f"epochs")
                    self.log.info("%s", message)
                    break
        except KeyboardInterrupt:
            self._finish("interrupted")
            raise
        except UserError as exc:
            self._finish("failed", str(exc))
            raise
        except BaseException:
            self._finish("crashed")
            raise
        self._finish(status, message)
        best = self.keeper.best
        if not message:
            message = f"finished {self.epoch} epochs"
        if best:
            message += f"; best {best['metric']} {best['value']:.4f} at epoch {best['epoch']}"
        self.log.info("%s\nrun folder: %s", message, display_path(self.run_dir))
        result = RunResult(self.run_dir, status, self.epoch, best, self.history[-1] if self.history else {}, message)
        close_logging(self.log)
        return result

    def train_epoch(self) -> dict[str, float]:
        """Train one epoch (``self.epoch``, not advanced here); returns its metrics."""
        config, device = self.config, self.device
        seed = epoch_seed(config.seed, self.epoch)
        torch.manual_seed(seed)  # dropout and anything else drawing from the global generator
        generator = torch.Generator(device=device).manual_seed(seed + 1)  # augmentation
        order = epoch_order(len(self.train_data), config.seed, self.epoch, shuffle=True,
                            rank=self.processes.rank, world_size=self.processes.world_size)
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        started = time.perf_counter()
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {self.epoch + 1}/{config.epochs}", unit="batch",
                   leave=False, dynamic_ncols=True,
                   disable=None if (self.options.progress and self.processes.is_main) else True)  # None: TTY only
        batches = iterate_batches(self.train_data, order, config.batch_size, config.data.num_workers,
                                  drop_singleton=True)
        for images, labels in batches:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            lr = config.optim.lr * lr_factor(self.step, self.steps_per_epoch, config)
            loss, logits = self.train_step(self.augment(images, generator), labels, lr)
            self.step += 1
            seen += len(labels)
            loss_sum += loss.detach().double() * len(labels)
            correct += (logits.detach().argmax(dim=1) == labels).sum()
            bar.update(1)
            if self.step % CHECK_EVERY == 0:
                self._check_finite(loss_sum)
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}",
                                samples_s=f"{seen * self.processes.world_size / (time.perf_counter() - started):.0f}")
        bar.close()
        self._check_finite(loss_sum)
        totals = all_reduce_sum(torch.stack([loss_sum, correct.double(),
                                             torch.tensor(float(seen), dtype=torch.float64, device=device)]),
                                self.processes)
        elapsed = time.perf_counter() - started
        return {
            "lr": lr,
            "train/loss": totals[0].item() / totals[2].item(),
            "train/accuracy": totals[1].item() / totals[2].item(),
            "epoch_seconds": round(elapsed, 3),
            "samples_per_second": round(totals[2].item() / elapsed, 1),
        }

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step at learning rate ``lr``; returns (loss, logits)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            logits = self.model(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.config.optim.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.config.optim.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.config.optim.grad_clip_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return loss, logits

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        self.network.eval()
        order = epoch_order(len(self.val_data), 0, 0, shuffle=False)[self.processes.rank::self.processes.world_size]
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.float64, device=self.device)
        for images, labels in iterate_batches(self.val_data, order, 2 * self.config.batch_size,
                                              self.config.data.num_workers, drop_singleton=False):
            images, labels = images.to(self.device), labels.to(self.device)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                logits = self.network(images).float()
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
            correct += (logits.argmax(dim=1) == labels).sum().double()
        count = torch.tensor(float(len(order)), dtype=torch.float64, device=self.device)
        totals = all_reduce_sum(torch.stack([loss_sum, correct, count]), self.processes)
        return {"val/loss": totals[0].item() / totals[2].item(), "val/accuracy": totals[1].item() / totals[2].item()}

    def _callback(self, row: dict[str, Any]) -> str | None:
        callback = self.options.on_epoch_end
        answer = callback(row) if callback is not None and self.processes.is_main else None
        return broadcast(answer, self.processes)

    def _check_finite(self, loss_sum: torch.Tensor) -> None:
        bad = torch.logical_not(torch.isfinite(loss_sum)).to(torch.float64).reshape(1)  # () -> (1,)
        if all_reduce_sum(bad, self.processes).item() > 0:
            raise DivergedError(f"the loss became {loss_sum.item()} in epoch {self.epoch + 1} (by step {self.step})")

    def _end_epoch(self, row: dict[str, Any]) -> bool:
        monitor = self.config.checkpoint.monitor
        decision = self.keeper.decide(self.epoch, row[monitor])
        stop = self.stopper.update(row[monitor])
        self.history.append(row)
        if self.processes.is_main:
            self.keeper.write(decision, self._payload(row))
            self.metrics_csv.append(row)
            for key, value in row.items():
                if "/" in key or key == "lr":
                    self.writer.add_scalar(key, value, self.epoch)
            self.writer.flush()
        self.log.info(
            "epoch %d/%d  train/loss %.4f  train/accuracy %.4f  val/loss %.4f  val/accuracy %.4f  lr %.2e  "
            "%.0f samples/s%s",
            self.epoch, self.config.epochs, row["train/loss"], row["train/accuracy"], row["val/loss"],
            row["val/accuracy"], row["lr"], row["samples_per_second"], "  * best" if decision.best else "")
        return stop

    def _payload(self, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "format_version": CHECKPOINT_FORMAT,
            "network_config": self.network_config.to_dict(),
            "network_hash": self.network_config.hash,
            "class_names": list(self.dataset.class_names),
            "model": self.network.state_dict(),
            "train_config": self.config.to_dict(),
            "run": self.run_dir.name,
            "epoch": self.epoch,
            "step": self.step,
            "metrics": dict(row),
            "history": [dict(r) for r in self.history],
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"name": self.config.schedule.name, "step": self.step,
                          "steps_per_epoch": self.steps_per_epoch},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []},
            "checkpoint_keeper": self.keeper.state_dict(),
            "early_stopping": self.stopper.state_dict(),
        }

    def _last_good(self) -> str:
        last = self.run_dir / "checkpoints" / "last.pt"
        return f"{display_path(last)} (epoch {self.epoch})" if last.exists() else "none (no epoch finished)"

    def _finish(self, status: str, error: str | None = None) -> None:
        if not self.processes.is_main or not self.manifest:
            return
        if self.writer is not None:
            self.writer.close()
        self.manifest.update(status=status, ended=now(), result={
            "epochs_completed": self.epoch,
            "best": self.keeper.best,
            "last": self.history[-1] if self.history else None,
            "error": error,
        })
        write_json(self.run_dir / "manifest.json", self.manifest)


def _pinned_network_config(loaded: LoadedConfig, config: TrainConfig) -> NetworkConfig:
    network_config = load_network_config(config.network)
    if loaded.network_hash and loaded.network_hash != network_config.hash:
        pinned = NetworkConfig.from_dict(loaded.network_config, "pinned") if loaded.network_config else None
        changes = differences(pinned.to_dict(), network_config.to_dict()) if pinned else {}
        detail = describe_differences(changes) or "unknown"
        raise UserError(
            f"{display_path(loaded.source)} pins network config {config.network!r} with hash "
            f"{loaded.network_hash[:12]}, but {display_path(network_config_path(config.network))} now hashes to "
            f"{network_config.hash[:12]} ({detail}). Restore the shared config (the pinned one is inline under "
            "network_config in that file), or remove network_hash and network_config to train with the current one."
        )
    return network_config


def _check_changes(changes: dict[str, tuple[Any, Any]], allow_change: Sequence[str], run_dir: Path) -> None:
    def allowed(key: str) -> bool:
        return any(key == a or key.startswith(f"{a}.") for a in allow_change)

    if "network" in changes:
        raise UserError(f"resume {display_path(run_dir)}: the network cannot change when resuming; start a new run")
    refused = {k: v for k, v in changes.items() if not allowed(k)}
    if refused:
        listed = describe_differences(refused)
        keys = " ".join(refused)
        raise UserError(
            f"resume {display_path(run_dir)}: the config differs from the run's ({listed}). Resuming with a changed "
            f"config is refused unless you allow it explicitly: --allow-change {keys}"
        )


def _default_name(loaded: LoadedConfig, network_config: NetworkConfig, dev: bool) -> str:
    source = loaded.source
    generic = source is None or source == DEFAULT_CONFIG or source.name == "config.yaml"
    name = network_config.name if generic else source.stem
    return f"{name}-dev" if dev else name


def _weights_path(weights: str) -> Path:
    candidate = Path(weights)
    for path in ([candidate] if candidate.is_absolute() else [model_dir() / candidate, candidate]):
        if path.is_file():
            return path
    raise UserError(f"init.weights: {weights!r} not found (looked in {display_path(model_dir())} and the working "
                    "directory)")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{display_path(path)}: unreadable manifest ({exc})") from None


