"""The training run: :func:`train` starts one, :func:`resume` continues one.

Both build the parts (:class:`train.data.loading.TrainingData`, :class:`train.loop.trainer.Trainer`,
:class:`train.watch.recorder.RunRecorder`) and hand them to :class:`TrainingRun`, which
runs the epochs, keeps checkpoints, stops early or on divergence, and returns a
:class:`RunResult`. The model, optimiser, schedule step, RNG states and the
checkpoint / early-stopping bookkeeping are restored on resume, so on the CPU a
resumed run ends with the same weights, bit for bit, as an uninterrupted one, whether
it stopped at the end of an epoch or inside one (a signal, a recovery checkpoint:
train/resilience/preemption.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.dicts import describe_differences, differences
from common.errors import UserError
from common.files import file_sha256
from common.paths import display_path
from common.run_folder import RunFolder, find_run
from datatools.profile import quick_check
from networks import load_network_config
from networks.checkpoint import CHECKPOINT_FORMAT, checkpoint_network_config, read_checkpoint
from networks.config import NetworkConfig, network_config_path
from train.experiments.runs import resume_command
from train.resilience.checkpoints import CheckpointKeeper, EarlyStopping, KeepDecision
from train.config import DEFAULT_CONFIG, UNCOMPUTED_KEYS, LoadedConfig, TrainConfig, load_train_config
from train.data.loading import load_training_data
from train.process.distributed import Processes, barrier, broadcast, ranks_agree, start_processes, stop_processes
from train.resilience.preemption import RunGuard, signal_name, stop_status
from train.watch.profiling import ProfileComplete
from train.watch.recorder import RunRecorder, new_manifest
from train.watch.network_table import model_summary
from train.process.threads import apply_threads, intra_op_threads
from train.watch.trackers.base import check_trackers
from train.loop.trainer import DivergedError, Trainer
from train.watch.watch import Watch

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
        auto_resume: Started by ``--auto-resume``: the same command continues the run
            (said when a signal stops it).
        profile: Profile this many steps after a warm-up, print the breakdown and
            stop (status ``profiled``); 0 trains normally (train/watch/profiling.py).
        threads: Intra-op CPU threads; 0 follows the thread policy (train/process/threads.py).
    """

    name: str | None = None
    device: str = "auto"
    dev: bool = False
    progress: bool = True
    on_epoch_end: Callable[[dict[str, Any]], str | None] | None = None
    auto_resume: bool = False
    profile: int = 0
    threads: int = 0


@dataclass(frozen=True)
class RunResult:
    """What a run did.

    Attributes:
        run_dir: The run folder.
        status: ``finished``, ``stopped_early``, ``diverged``, ``interrupted`` or
            ``preempted`` (a signal; ``last.pt`` continues it), or what ``on_epoch_end`` returned.
        epochs_completed: Epochs finished (and checkpointed).
        best: ``{"epoch", "value", "metric"}`` of the best epoch, or None.
        metrics: The last epoch's metrics row.
        message: A sentence for the console.
        stop_signal: The signal that stopped the run, or None.
    """

    run_dir: Path
    status: str
    epochs_completed: int
    best: dict[str, Any] | None
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    stop_signal: int | None = None

    @property
    def exit_status(self) -> int:
        """The command's exit status: 128 + the signal's number after a signal, 1 after divergence, else 0."""
        if self.stop_signal is not None:
            return 128 + self.stop_signal
        return 1 if self.status == "diverged" else 0


def train(loaded: LoadedConfig | TrainConfig, options: RunOptions = RunOptions()) -> RunResult:
    """Start a new training run.

    Args:
        loaded: The config (from :func:`train.config.load_train_config`, or a
            bare :class:`TrainConfig`).
        options: Run-level options.

    Returns:
        The run's result; the run folder holds everything it wrote.

    Raises:
        UserError: For a problem with the config, the data or the initial weights.
    """
    if isinstance(loaded, TrainConfig):
        loaded = LoadedConfig(config=loaded)
    config = loaded.config.for_dev() if options.dev else loaded.config
    check_trackers(config.log.trackers)  # an unknown tracker or a missing package stops before anything is written
    processes, device = start_processes(options.device)
    try:
        network_config = pinned_network_config(loaded, config)
        data = load_training_data(config, network_config, processes)
        trainer = Trainer(config, network_config, data, processes, device)
        init = initial_weights(trainer, config, network_config)
        name = options.name or _default_name(loaded, network_config, options.dev)
        folder = RunFolder(broadcast(RunFolder.create(name).path if processes.is_main else None, processes))
        with run_lock(folder, processes):
            recorder = RunRecorder(folder, processes.is_main)
            recorder.start(config, network_config, new_manifest(folder, data, network_config, str(device),
                                                                processes.world_size, options.dev, init))
            run = TrainingRun(trainer, recorder, options)
            run.log_start("run", init)
            return run.fit()
    finally:
        stop_processes()


def resume(run: str, overrides: Sequence[str] = (), allow_change: Sequence[str] = (),
           options: RunOptions = RunOptions(), config: TrainConfig | None = None) -> RunResult:
    """Continue a run from its ``checkpoints/last.pt`` (an epoch's end or inside an epoch), in the same run folder.

    Args:
        run: The run folder, its name under ``output/train``, or ``last``.
        overrides: ``key=value`` changes to the run's config.
        allow_change: Keys (or sections) that ``overrides`` may change, e.g.
            ``epochs``; any other difference is refused (except
            :data:`train.config.UNCOMPUTED_KEYS`). ``network`` never changes.
        options: Run-level options (``name`` and ``dev`` do not apply).
        config: The config to continue with, instead of the run's ``config.yaml`` with
            ``overrides`` (``--auto-resume``); checked against the run's the same way.

    Returns:
        The run's result.

    Raises:
        UserError: When the run or its checkpoint is unusable, the config changed
            without ``allow_change``, or the run is already complete.
    """
    folder = find_run(run)
    processes, device = start_processes(options.device)
    try:
        with run_lock(folder, processes):  # before anything reads or cleans the run's files
            return _resume_locked(folder, run, overrides, allow_change, options, processes, device, config)
    finally:
        stop_processes()


def _resume_locked(folder: RunFolder, run: str, overrides: Sequence[str], allow_change: Sequence[str],
                   options: RunOptions, processes: Processes, device: Any, config: TrainConfig | None) -> RunResult:
    original = load_train_config(folder.config_path)
    loaded = load_train_config(folder.config_path, overrides) if config is None else LoadedConfig(config)
    check_trackers(loaded.config.log.trackers)
    folder.read_manifest()  # a run whose manifest is unreadable is refused before anything is loaded or written
    changes = differences(original.config.to_dict(), loaded.config.to_dict())
    check_changes(changes, allow_change, folder)
    checkpoint_path = folder.checkpoints_dir / "last.pt"
    checkpoint = read_checkpoint(checkpoint_path)
    missing = [key for key in RESUME_KEYS if key not in checkpoint]
    if missing:
        raise UserError(f"{display_path(checkpoint_path)}: cannot resume from it, missing {missing}")
    if checkpoint["epoch"] >= loaded.config.epochs:
        raise UserError(
            f"{display_path(folder.path)} already completed {checkpoint['epoch']} of {loaded.config.epochs} epochs; "
            f"to train longer: --resume {run} epochs=<more> --allow-change epochs"
        )
    network_config = checkpoint_network_config(checkpoint, display_path(checkpoint_path))
    data = load_training_data(loaded.config, network_config, processes)
    trainer = Trainer(loaded.config, network_config, data, processes, device)
    trainer.restore(checkpoint, display_path(checkpoint_path))
    recorder = RunRecorder(folder, processes.is_main)
    resumed = {"epoch": checkpoint["epoch"], "changes": {k: {"from": a, "to": b} for k, (a, b) in changes.items()}}
    if checkpoint["position"]:
        resumed["step_in_epoch"] = checkpoint["position"]["step_in_epoch"]
    recorder.resume(loaded.config, network_config, list(checkpoint["history"]), resumed, checkpoint["step"])
    training = TrainingRun(trainer, recorder, options, checkpoint)
    training.log_start("resuming", None, resumed["changes"] or "none")
    return training.fit()


@contextmanager
def run_lock(folder: RunFolder, processes: Processes) -> Iterator[None]:
    """Hold the run folder's lock on the main process for the block; every process stops when it is taken.

    Raises:
        UserError: When another process trains in the run, naming it.
    """
    stack, error = ExitStack(), None
    if processes.is_main:
        try:
            stack.enter_context(folder.exclusive())
        except UserError as exc:
            error = str(exc)
    error = broadcast(error, processes)
    if error:
        raise UserError(error)
    with stack:
        yield


class TrainingRun:
    """Runs the epochs of one run: checkpoints, early stopping, the NaN guard, the epoch callback,
    stops on signals and recovery checkpoints inside epochs (:class:`train.resilience.preemption.RunGuard`).

    Args:
        trainer: The model being trained.
        recorder: The run folder's recorder.
        options: Run-level options.
        checkpoint: The checkpoint a resumed run continues from (its bookkeeping and history).
    """

    def __init__(self, trainer: Trainer, recorder: RunRecorder, options: RunOptions,
                 checkpoint: dict[str, Any] | None = None):
        self.trainer = trainer
        self.recorder = recorder
        self.options = options
        self.log = recorder.log
        settings = trainer.config.checkpoint
        self.keeper = CheckpointKeeper(recorder.folder.checkpoints_dir, settings.monitor, settings.mode,
                                       settings.top_k)
        self.stopper = EarlyStopping(trainer.config.early_stopping.patience, trainer.config.early_stopping.min_delta,
                                     settings.mode)
        self.history: list[dict[str, Any]] = []
        self.guard = RunGuard(settings, trainer.processes, self.save_position, self.log)
        self.save_seconds = 0.0
        if checkpoint is not None:
            inside = checkpoint.get("position") is not None  # best.pt and the top-k were complete before it
            self.keeper.load_state_dict(checkpoint["checkpoint_keeper"], remove_files=trainer.processes.is_main,
                                        epoch=None if inside else checkpoint["epoch"])
            self.stopper.load_state_dict(checkpoint["early_stopping"])
            self.history = list(checkpoint["history"])
        self.threads_before = intra_op_threads()  # given back when the run ends (a caller's process)
        self.threads = apply_threads(options.threads, trainer.device.type, decode_workers(trainer))
        self.watch = Watch(trainer, recorder, options.profile, trainer.data.train.source)
        trainer.observer = self.watch  # step-level curves, figures, timers, system figures, the profiler

    def log_start(self, verb: str, init: dict[str, Any] | None, changes: Any = None) -> None:
        """Log what this run is: folder, device, network summary, data."""
        trainer, data = self.trainer, self.trainer.data
        self.log.info("%s %s (%s, %d process(es))", verb, display_path(self.recorder.folder.path), trainer.device,
                      trainer.processes.world_size)
        if changes is not None:
            inside = f", step {trainer.position.done} of {trainer.steps_per_epoch}" if trainer.position else ""
            self.log.info("continuing after epoch %d%s; config changes: %s", trainer.epoch, inside, changes)
        if init:
            self.log.info("initial weights from %s (%s): %s", init["file"], init["mode"], init["summary"])
        network_config = trainer.network_config
        self.log.info("network %s (%s), hash %s\n%s", network_config.name, network_config.arch.name,
                      network_config.hash[:12], model_summary(trainer.network, trainer.device))
        self.log.info("data %s: %s %d images (%s), %s %d images (%s); %d steps per epoch",
                      display_path(data.dataset.root), data.train.name, len(data.train), data.train.source,
                      data.val.name, len(data.val), data.val.source, trainer.steps_per_epoch)
        for note in dict.fromkeys(data.train.notes + data.val.notes):
            self.log.warning("%s", note)
        self.log.info("%s", self.threads)
        self.log.info("%s", quick_check(data.dataset, data.train.samples, network_config.input.color_mode,
                                        data.train.name))

    def fit(self) -> RunResult:
        """Train until the last epoch, early stopping, divergence, a callback's stop or a signal.

        The signals of ``checkpoint.signals`` are handled from here until everything is
        written (see :mod:`train.resilience.preemption`).
        """
        try:
            with self.guard:
                return self._fit()
        finally:
            self.trainer.data.close()
            self.recorder.close()
            intra_op_threads(self.threads_before)

    def _fit(self) -> RunResult:
        try:
            status, message = self._epochs()
        except KeyboardInterrupt:
            self._finish("interrupted")
            raise
        except UserError as exc:
            self._finish("failed", str(exc))
            raise
        except BaseException:
            self._finish("crashed")
            raise
        if status in ("interrupted", "preempted"):
            return self._stopped(status)
        in_sync = ranks_agree(self.trainer.network, self.trainer.processes)  # every process, after the last epoch
        if not in_sync:
            self.log.error("the processes ended with different weights; the checkpoints hold rank 0's")
        self._finish(status, in_sync=in_sync)
        best = self.keeper.best
        message = message or f"finished {self.trainer.epoch} epochs"
        if best:
            message += f"; best {best['metric']} {best['value']:.4f} at epoch {best['epoch']}"
        self.log.info("%s\nrun folder: %s", message, display_path(self.recorder.folder.path))
        barrier(self.trainer.processes)  # every process leaves the group together, once the run's files are written
        return RunResult(self.recorder.folder.path, status, self.trainer.epoch, best,
                         self.history[-1] if self.history else {}, message)

    def _epochs(self) -> tuple[str, str]:
        trainer, config = self.trainer, self.trainer.config
        first_epoch = trainer.epoch + (1 if trainer.position is None else 2)  # a whole epoch, for the estimate
        while trainer.epoch < config.epochs:
            started = time.perf_counter()
            try:
                row = trainer.train_epoch(self.options.progress, lambda: self.guard.after_step(trainer.step))
            except DivergedError as exc:
                message = (f"training diverged: {exc}; stopped without saving this epoch. The last good checkpoint "
                           f"is {self._last_good()}. Lower optim.lr or set optim.grad_clip_norm.")
                self.log.error("%s", message)
                return "diverged", message
            except ProfileComplete:
                return "profiled", self._profile_report()
            if row is None:  # a signal, inside the epoch: last.pt holds where
                return stop_status(self.guard.stop_signal), ""
            row = {"epoch": trainer.epoch, "step": trainer.step, **row, **trainer.validate()}
            if not math.isfinite(row["val/loss"]):
                message = (f"training diverged: the validation loss is {row['val/loss']} after epoch {trainer.epoch}; "
                           f"stopped without saving this epoch. The last good checkpoint is {self._last_good()}. "
                           "Lower optim.lr or set optim.grad_clip_norm.")
                self.log.error("%s", message)
                return "diverged", message
            stop = self._end_epoch(row)
            signalled = self.guard.at_epoch_end()
            if trainer.epoch == first_epoch:
                self._log_time_estimate(time.perf_counter() - started)
            requested = self._callback(row)
            if requested:
                message = f"stopped after epoch {trainer.epoch}: {requested}"
                self.log.info("%s", message)
                return requested, message
            if stop:
                message = (f"early stopping: {config.checkpoint.monitor} did not improve by more than "
                           f"{config.early_stopping.min_delta} for {config.early_stopping.patience} epochs")
                self.log.info("%s", message)
                return "stopped_early", message
            if signalled and trainer.epoch < config.epochs:
                return stop_status(self.guard.stop_signal), ""
        return "finished", ""

    def _log_time_estimate(self, seconds: float) -> None:
        """Once per start: the measured epoch time and what it means for the whole run."""
        epochs, left = self.trainer.config.epochs, self.trainer.config.epochs - self.trainer.epoch
        self.log.info("time estimate: %.1f s per epoch (epoch %d, with validation): about %s for %d epochs, %s left",
                      seconds, self.trainer.epoch, describe_duration(seconds * epochs), epochs,
                      describe_duration(seconds * left))

    def _callback(self, row: dict[str, Any]) -> str | None:
        callback = self.options.on_epoch_end
        answer = callback(row) if callback is not None and self.trainer.processes.is_main else None
        return broadcast(answer, self.trainer.processes)

    def _end_epoch(self, row: dict[str, Any]) -> bool:
        monitor, epoch = self.trainer.config.checkpoint.monitor, self.trainer.epoch
        row.update(self.watch.epoch_end(row))
        decision = self.keeper.decide(epoch, row[monitor])
        stop = self.stopper.update(row[monitor])
        self.history.append(row)
        timer = self.watch.timer
        if self.trainer.processes.is_main:
            with timer.phase("checkpoint"):
                self.keeper.write(decision, self._payload(row))
        with timer.phase("logging"):
            self.recorder.record_epoch(row)
            self.watch.after_epoch(row, final=stop or epoch >= self.trainer.config.epochs)
        self.log.info(
            "epoch %d/%d  train/loss %.4f  train/accuracy %.4f  val/loss %.4f  val/accuracy %.4f  lr %.2e  "
            "%.0f samples/s%s",
            epoch, self.trainer.config.epochs, row["train/loss"], row["train/accuracy"], row["val/loss"],
            row["val/accuracy"], row["lr"], row["samples_per_second"], "  * best" if decision.best else "")
        return stop

    def save_position(self) -> float:
        """Write ``last.pt`` where the epoch stands (every process gathers; the main one writes); its seconds."""
        trainer = self.trainer
        position = trainer.position
        state = position.state_dict(trainer.processes, trainer.steps_per_epoch)
        started = time.perf_counter()
        if trainer.processes.is_main:
            self.keeper.write(KeepDecision(None, False, []),
                              self._payload(self.history[-1] if self.history else {}, state))
        self.save_seconds = time.perf_counter() - started
        if self.guard.stop_signal is None:
            self.log.info("recovery checkpoint in epoch %d at step %d of %d: %.0f ms", position.epoch + 1,
                          position.done, trainer.steps_per_epoch, 1000 * self.save_seconds)
        return self.save_seconds

    def _stopped(self, status: str) -> RunResult:
        """After a signal: record the status and where the run stands, say how to continue, leave together."""
        trainer, folder = self.trainer, self.recorder.folder
        position = trainer.position
        where = (f"in epoch {trainer.epoch + 1} at step {position.done} of {trainer.steps_per_epoch}"
                 if position else f"after epoch {trainer.epoch}")
        command = resume_command(folder.path, trainer.processes.world_size)
        if self.options.auto_resume:
            command = f"the same command (--auto-resume), or {command}"
        self._finish(status, position={"epoch": trainer.epoch, "step_in_epoch": position.done if position else 0,
                                       "steps_per_epoch": trainer.steps_per_epoch},
                     signal=signal_name(self.guard.stop_signal))
        message = f"{status} by {signal_name(self.guard.stop_signal)} {where}"
        self.log.info("%s: last.pt written%s; continue with: %s", message,
                      f" in {1000 * self.save_seconds:.0f} ms" if position else "", command)
        barrier(trainer.processes)  # nobody leaves (and no launcher stops the others) before last.pt is written
        return RunResult(folder.path, status, trainer.epoch, self.keeper.best,
                         self.history[-1] if self.history else {}, message, self.guard.stop_signal)

    def _payload(self, row: dict[str, Any], position: dict[str, Any] | None = None) -> dict[str, Any]:
        trainer = self.trainer
        return {
            "format_version": CHECKPOINT_FORMAT,
            "network_config": trainer.network_config.to_dict(),
            "network_hash": trainer.network_config.hash,
            "class_names": list(trainer.data.dataset.class_names),
            "train_config": trainer.config.to_dict(),
            "run": self.recorder.folder.name,
            "metrics": dict(row),
            "history": [dict(r) for r in self.history],
            **trainer.training_state(),
            "position": position,
            "checkpoint_keeper": self.keeper.state_dict(),
            "early_stopping": self.stopper.state_dict(),
        }

    def _last_good(self) -> str:
        last = self.recorder.folder.checkpoints_dir / "last.pt"
        return f"{display_path(last)} (epoch {self.trainer.epoch})" if last.exists() else "none (no epoch finished)"

    def _profile_report(self) -> str:
        """Print the profile's report (main process); the run's closing message."""
        report = self.watch.profiler.report
        if self.trainer.processes.is_main:
            self.log.info("%s", report.text())
        summary = display_path(self.recorder.folder.profile_dir / "summary.txt")
        return f"profiled {report.breakdown.steps} steps; the breakdown and verdict are above and in {summary}"

    def _finish(self, status: str, error: str | None = None, in_sync: bool | None = None, **stopped: Any) -> None:
        self.watch.run_end(self.trainer.epoch, self.trainer.step)
        data = self.trainer.data
        unreadable = {split.name: split.unreadable for split in (data.train, data.val) if split.unreadable}
        self.recorder.finish(status, {"epochs_completed": self.trainer.epoch, "best": self.keeper.best,
                                      "last": self.history[-1] if self.history else None, "error": error,
                                      "unreadable": unreadable, "ranks_in_sync": in_sync, **stopped})


def decode_workers(trainer: Trainer) -> int:
    """Processes decoding training batches beside the training threads (``data.num_workers`` when batches
    are decoded per batch, else 0)."""
    split = trainer.data.train
    return trainer.config.data.num_workers if split.images is None and split.pack is None else 0


def initial_weights(trainer: Trainer, config: TrainConfig, network_config: NetworkConfig) -> dict[str, Any] | None:
    """Load ``init.weights`` (in ``init.mode``), else the network config's ``pretrained`` file
    (in ``pretrained`` mode); returns what the manifest records, or None for a random start.

    Raises:
        UserError: When the file is missing, damaged, or does not fit the network.
    """
    weights, mode, key = config.init.weights, config.init.mode, "init.weights"
    if not weights and network_config.pretrained:
        weights, mode, key = network_config.pretrained, "pretrained", f"network config {network_config.name!r}: pretrained"
    if not weights:
        return None
    path, report = trainer.load_initial_weights(weights, mode, key)
    return {"file": display_path(path), "sha256": file_sha256(path), "mode": mode, "report": report.to_dict(),
            "summary": report.summary()}


def pinned_network_config(loaded: LoadedConfig, config: TrainConfig) -> NetworkConfig:
    """The config's shared network config, refused when it no longer hashes as the run's file pins it.

    Raises:
        UserError: Showing both hashes and what differs.
    """
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


def check_changes(changes: dict[str, tuple[Any, Any]], allow_change: Sequence[str], folder: RunFolder) -> None:
    """Refuse config changes on resume unless ``allow_change`` names them (or they are
    :data:`train.config.UNCOMPUTED_KEYS`); the network never changes.

    Raises:
        UserError: Listing the differences and the ``--allow-change`` that would allow them.
    """
    def allowed(key: str) -> bool:
        return any(key == a or key.startswith(f"{a}.") for a in allow_change)

    if "network" in changes:
        raise UserError(f"resume {display_path(folder.path)}: the network cannot change when resuming; start a new run")
    refused = {k: v for k, v in changes.items() if not allowed(k) and k not in UNCOMPUTED_KEYS}
    if refused:
        raise UserError(
            f"resume {display_path(folder.path)}: the config differs from the run's ({describe_differences(refused)}). "
            f"Resuming with a changed config is refused unless you allow it explicitly: --allow-change "
            f"{' '.join(refused)}"
        )


def describe_duration(seconds: float) -> str:
    """``"40 s"``, ``"12 min"`` or ``"2.5 h"``: a duration as a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _default_name(loaded: LoadedConfig, network_config: NetworkConfig, dev: bool) -> str:
    source = loaded.source
    generic = source is None or source == DEFAULT_CONFIG or source.name == "config.yaml"
    name = network_config.name if generic else source.stem
    return f"{name}-dev" if dev else name

