"""Checkpoints: ``last.pt``, ``best.pt``, the top-k and recovery checkpoints, each written atomically.

:class:`CheckpointHook` is the run's one writer of checkpoints (a hook, see
:mod:`train.loop.hooks`):

- at the end of each epoch: ``last.pt``, and ``best.pt`` and a top-k file when
  :class:`CheckpointKeeper` (by ``checkpoint.monitor`` and ``mode``) says so;
- inside an epoch, a recovery ``last.pt`` every ``checkpoint.every_steps`` steps and
  once ``checkpoint.every_minutes`` passed on the main process's clock (every process
  agrees on it through the loop's per-step exchange), so a SIGKILL or a lost node costs
  at most that much training; each is logged with its cost, and a warning says when
  they take more than :data:`COST_WARNING` of the training time;
- when the run stops on a signal inside an epoch (``interrupted``, ``preempted``):
  ``last.pt`` where the epoch stands, from which ``--resume`` continues exactly.

A checkpoint is a plain dict (tensors, numbers, strings, lists, dicts) that loads
with ``torch.load(weights_only=True)``; its keys are listed in docs/contracts.md, and
the state of every hook of the run is under ``hooks``. Every file is written to a
temporary file and renamed into place, so a kill at any moment leaves the previous
``last.pt`` intact, and each gets its sha256 sidecar (:mod:`common.integrity`) before
it replaces the old one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from common.files import atomic_write_bytes
from common.integrity import recorded_digests, sidecar, write_sidecar
from common.paths import display_path
from common.run_folder import RunFolder, RunStatus
from networks.checkpoint import CHECKPOINT_FORMAT
from train.config import TrainConfig
from train.loop.hooks import Hook, RunState, Step

COST_WARNING = 0.05
"""Share of the training time between two recovery checkpoints above which their cost is worth a warning."""


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write a checkpoint and its sha256 sidecar (the sidecar first; each atomically)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    write_sidecar(path, hashlib.sha256(data).hexdigest())
    atomic_write_bytes(path, data)


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint and its sidecar."""
    Path(path).unlink(missing_ok=True)
    sidecar(path).unlink(missing_ok=True)


def is_better(value: float, reference: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` improves on ``reference`` by more than ``min_delta``."""
    if not math.isfinite(value):
        return False
    if reference is None:
        return True
    return value > reference + min_delta if mode == "max" else value < reference - min_delta


@dataclass
class KeepDecision:
    """What to write for one epoch: the top-k file (if any), best.pt, and files to delete."""

    topk_file: str | None
    best: bool
    delete: list[str]


class CheckpointKeeper:
    """Decides which checkpoints to keep by a monitored metric.

    Args:
        folder: The run's ``checkpoints/`` folder.
        monitor: Metric name, e.g. ``val/accuracy``.
        mode: ``max`` or ``min``.
        top_k: Number of best epochs kept as separate files.
    """

    def __init__(self, folder: Path, monitor: str, mode: str, top_k: int):
        self.folder = folder
        self.monitor = monitor
        self.mode = mode
        self.top_k = top_k
        self.best: dict[str, Any] | None = None
        self.kept: list[dict[str, Any]] = []

    def decide(self, epoch: int, value: float) -> KeepDecision:
        """Update the bookkeeping for a finished epoch; returns what to write."""
        topk_file = None
        delete: list[str] = []
        if self.top_k > 0 and math.isfinite(value):
            worst = self._ranked()[-1] if len(self.kept) >= self.top_k else None
            if worst is None or is_better(value, worst["value"], self.mode):
                topk_file = f"epoch={epoch:04d}-{self.monitor.replace('/', '_')}={value:.4f}.pt"
                self.kept.append({"epoch": epoch, "value": value, "file": topk_file})
                while len(self.kept) > self.top_k:
                    dropped = self._ranked()[-1]
                    self.kept.remove(dropped)
                    delete.append(dropped["file"])
        best = is_better(value, None if self.best is None else self.best["value"], self.mode)
        if best:
            self.best = {"epoch": epoch, "value": value, "metric": self.monitor}
        return KeepDecision(topk_file=topk_file, best=best, delete=delete)

    def write(self, decision: KeepDecision, payload: dict[str, Any]) -> None:
        """Write the files a decision asks for, ``last.pt`` first.

        ``last.pt`` holds this bookkeeping, so after a kill anywhere in between,
        :meth:`load_state_dict` finds the epoch's ``best.pt`` and top-k file as
        ``last.pt`` says they should be, and restores them from it when they are not.
        """
        save_checkpoint(payload, self.folder / "last.pt")
        if decision.best:
            save_checkpoint(payload, self.folder / "best.pt")
        if decision.topk_file:
            save_checkpoint(payload, self.folder / decision.topk_file)
        for name in decision.delete:
            remove_checkpoint(self.folder / name)

    def state_dict(self) -> dict[str, Any]:
        """Bookkeeping to store in checkpoints."""
        return {"best": self.best, "kept": [dict(entry) for entry in self.kept]}

    def load_state_dict(self, state: dict[str, Any], remove_files: bool = True, epoch: int | None = None) -> None:
        """Restore bookkeeping from ``last.pt`` (of ``epoch``).

        With ``remove_files`` (the process that writes checkpoints): the epoch's
        ``best.pt`` and top-k file, when ``last.pt`` says they exist but a kill came
        first, are restored from ``last.pt`` (the same payload); top-k files that are
        no longer kept and temporary files of interrupted writes are deleted.
        """
        self.best = state["best"]
        if not remove_files:
            self.kept = [dict(entry) for entry in state["kept"]]
            return
        if epoch is not None:
            self._restore_from_last(epoch, state)
        # An entry whose file a later epoch already replaced (before a crash) is forgotten.
        self.kept = [dict(entry) for entry in state["kept"] if (self.folder / entry["file"]).is_file()]
        wanted = {entry["file"] for entry in self.kept} | {"best.pt", "last.pt"}
        for path in self.folder.glob("epoch=*.pt"):
            if path.name not in wanted:
                remove_checkpoint(path)
        for path in self.folder.glob("epoch=*.pt.sha256"):
            if path.name.removesuffix(".sha256") not in wanted:
                path.unlink()
        for path in self.folder.glob(".*.tmp"):
            path.unlink()

    def _restore_from_last(self, epoch: int, state: dict[str, Any]) -> None:
        last = self.folder / "last.pt"
        digests = recorded_digests(last)
        if digests is None:
            return
        names = ["best.pt"] if state["best"] and state["best"]["epoch"] == epoch else []
        names += [entry["file"] for entry in state["kept"] if entry["epoch"] == epoch]
        for name in names:
            copy = recorded_digests(self.folder / name)
            if not (self.folder / name).is_file() or not copy or copy[0] != digests[0]:
                write_sidecar(self.folder / name, digests[0])
                atomic_write_bytes(self.folder / name, last.read_bytes())

    def _ranked(self) -> list[dict[str, Any]]:
        return sorted(self.kept, key=lambda e: (-e["value"] if self.mode == "max" else e["value"], e["epoch"]))


class CheckpointHook(Hook):
    """Writes the run's checkpoints (see the module docstring) and records the best epoch in its result.

    Args:
        folder: The run folder.
        config: The training config (``checkpoint.*``).
        log: The run's logger.
        clock: Seconds, monotonic (a parameter for tests).
    """

    name = "checkpoints"
    votes = ("recovery_checkpoint",)

    def __init__(self, folder: RunFolder, config: TrainConfig, log: logging.Logger,
                 clock: Callable[[], float] = time.monotonic):
        settings = config.checkpoint
        self.folder, self.config, self.log, self.clock = folder, config, log, clock
        self.keeper = CheckpointKeeper(folder.checkpoints_dir, settings.monitor, settings.mode, settings.top_k)
        self.every_seconds, self.every_steps = settings.every_minutes * 60.0, settings.every_steps
        self.restored: dict[str, Any] | None = None
        self.last_save = clock()
        self.saved_step = -1
        self.written_epoch = 0
        self.warned = False

    def state_dict(self) -> dict[str, Any]:
        """The keeper's bookkeeping (best epoch, kept top-k files)."""
        return self.keeper.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Keep the saved bookkeeping; :meth:`before_run` restores it, once the trainer's position is known."""
        self.restored = state

    def before_run(self, run: RunState) -> None:
        """Restore the keeper (repairing the files a kill left half-written) and start the recovery clock."""
        trainer = run.trainer
        if self.restored is not None:
            inside = trainer.position is not None  # best.pt and the top-k were complete before such a last.pt
            self.keeper.load_state_dict(self.restored, remove_files=trainer.processes.is_main,
                                        epoch=None if inside else trainer.epoch)
        run.result["best"] = self.keeper.best
        self.written_epoch = trainer.epoch  # the epoch the newest end-of-epoch last.pt holds
        self.last_save = self.clock()

    def after_step(self, run: RunState, step: Step) -> None:
        """A recovery checkpoint when due (every process agrees; the epoch's last step is left to its end)."""
        if step.last:
            return
        due = (self.every_steps > 0 and step.step % self.every_steps == 0) or run.agreed("recovery_checkpoint")
        if due and self.saved_step != step.step:
            since = self.clock() - self.last_save
            seconds = self.save_position(run)
            self._check_cost(run, seconds, since)
        timed = self.every_seconds > 0 and self.clock() - self.last_save >= self.every_seconds
        run.vote("recovery_checkpoint", run.trainer.processes.is_main and timed)

    def after_epoch(self, run: RunState, row: dict[str, Any]) -> None:
        """``last.pt``, and ``best.pt`` and a top-k file when the epoch earns them."""
        trainer = run.trainer
        decision = self.keeper.decide(trainer.epoch, row[self.config.checkpoint.monitor])
        run.result["best"] = self.keeper.best
        if trainer.processes.is_main:
            with run.timer.phase("checkpoint"):
                self.keeper.write(decision, self.payload(run, row))
        run.vote("recovery_checkpoint", False)
        self.last_save, self.saved_step, self.written_epoch = self.clock(), trainer.step, trainer.epoch

    def after_run(self, run: RunState, status: RunStatus) -> None:
        """After a signal inside an epoch, ``last.pt`` where it stands; the best epoch into the run's result; after
        divergence, which checkpoint is the last good one."""
        trainer = run.trainer
        stopped = run.stop is not None and run.stop.signal is not None and status.resumable
        if run.clean and stopped and trainer.position is not None and self.saved_step != trainer.step:
            self.save_position(run)
        if status is RunStatus.DIVERGED and trainer.processes.is_main:
            last = self.folder.checkpoints_dir / "last.pt"
            good = f"{display_path(last)} (epoch {self.written_epoch})" if last.exists() else "none (no epoch finished)"
            self.log.info("the last good checkpoint is %s", good)
        run.result["best"] = self.keeper.best

    def save_position(self, run: RunState) -> float:
        """Write ``last.pt`` where the epoch stands (every process gathers; the main one writes); its seconds."""
        trainer = run.trainer
        position = trainer.position
        state = position.state_dict(trainer.processes, trainer.steps_per_epoch)
        started = time.perf_counter()
        if trainer.processes.is_main:
            with run.timer.phase("checkpoint"):
                self.keeper.write(KeepDecision(None, False, []),
                                  self.payload(run, run.history[-1] if run.history else {}, state))
        seconds = time.perf_counter() - started
        self.last_save, self.saved_step = self.clock(), trainer.step
        self.log.info("%s checkpoint in epoch %d at step %d of %d: %.0f ms",
                      "stop" if run.stop is not None else "recovery", position.epoch + 1, position.done,
                      trainer.steps_per_epoch, 1000 * seconds)
        return seconds

    def payload(self, run: RunState, row: dict[str, Any], position: dict[str, Any] | None = None) -> dict[str, Any]:
        """A checkpoint's content: the network, the run's config and history, the training state, every hook's."""
        trainer = run.trainer
        return {
            "format_version": CHECKPOINT_FORMAT,
            "network_config": trainer.network_config.to_dict(),
            "network_hash": trainer.network_config.hash,
            "class_names": list(trainer.data.dataset.class_names),
            "train_config": trainer.config.to_dict(),
            "run": self.folder.name,
            "metrics": dict(row),
            "history": [dict(r) for r in run.history],
            **trainer.training_state(),
            "position": position,
            "hooks": run.hook_states(),
        }

    def _check_cost(self, run: RunState, seconds: float, since: float) -> None:
        if run.trainer.processes.is_main and not self.warned and since > 0 and seconds > COST_WARNING * since:
            self.warned = True
            self.log.warning("recovery checkpoints take %.0f%% of the training time (%.0f ms each, every %.1f s); "
                             "raise checkpoint.every_minutes or checkpoint.every_steps", 100 * seconds / since,
                             1000 * seconds, since)
