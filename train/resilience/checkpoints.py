"""Writing checkpoints: ``last.pt``, ``best.pt`` and the top-k, each written atomically.

A checkpoint is a plain dict (tensors, numbers, strings, lists, dicts) that loads
with ``torch.load(weights_only=True)``; its keys are listed in docs/contracts.md.
Every file is written to a temporary file and renamed into place, so a kill at any
moment leaves the previous ``last.pt`` intact, and each gets its sha256 sidecar
(:mod:`common.integrity`) before it replaces the old one.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from common.files import atomic_write_bytes
from common.integrity import recorded_digests, sidecar, write_sidecar


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


class EarlyStopping:
    """Stops after ``patience`` epochs without improvement larger than ``min_delta``.

    Args:
        patience: Epochs to wait; 0 disables.
        min_delta: Smallest improvement that counts.
        mode: ``max`` or ``min``.
    """

    def __init__(self, patience: int, min_delta: float, mode: str):
        self.patience = patience
        self.min_delta = min_delta
        self.mode = mode
        self.best: float | None = None
        self.bad_epochs = 0

    def update(self, value: float) -> bool:
        """Record an epoch's value; True when training should stop."""
        if is_better(value, self.best, self.mode, self.min_delta):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """Bookkeeping to store in checkpoints."""
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore bookkeeping."""
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]
