"""The run recorder: what a training run writes besides its checkpoints.

:class:`RunRecorder` owns ``config.yaml``, ``manifest.json``, ``metrics.csv``, the
TensorBoard events and ``log.txt`` of a run folder (writing them through
:class:`common.run_folder.RunFolder`, which knows the layout). Only the main process
writes; other processes under torchrun log warnings and errors only.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from common.files import atomic_write_text, file_sha256
from common.list_versions import list_reference
from common.paths import PROJECT_ROOT, display_path
from common.provenance import host_name, now, package_versions
from common.run_folder import RunFolder, RunManifest
from networks.config import NetworkConfig
from train.config import TrainConfig
from train.data import TrainingData

TRAIN_PACKAGES = ("torch", "torchvision", "timm", "numpy", "pillow", "omegaconf", "tensorboard", "scikit-learn",
                  "tqdm")
"""Packages whose versions a run's manifest records."""

TENSORBOARD_KEYS = ("lr", "train/loss", "train/accuracy", "val/loss", "val/accuracy")
"""Metrics written to TensorBoard each epoch."""


class RunRecorder:
    """Writes a run's config, manifest, metrics, TensorBoard events and log.

    Args:
        folder: The run folder.
        is_main: Whether this process writes (rank 0).
    """

    def __init__(self, folder: RunFolder, is_main: bool):
        self.folder = folder
        self.is_main = is_main
        self.log = setup_logging(folder.log_path if is_main else None, is_main)
        self.manifest: RunManifest | None = None
        self.writer: Any = None

    def start(self, config: TrainConfig, network_config: NetworkConfig, manifest: RunManifest) -> None:
        """Record a new run: ``config.yaml``, ``manifest.json`` and an empty TensorBoard log."""
        if not self.is_main:
            return
        self.folder.write_config(config.to_dict(), network_config.to_dict(), network_config.hash)
        self._open_tensorboard(purge_step=None)
        self.manifest = manifest
        self.folder.write_manifest(manifest)

    def resume(self, config: TrainConfig, network_config: NetworkConfig, history: list[dict[str, Any]],
               resumed: dict[str, Any]) -> None:
        """Record a resumed run: the config as resumed, a ``resumed`` manifest entry, metrics cut back to ``history``."""
        if not self.is_main:
            return
        manifest = self.folder.read_manifest()  # before anything is written: a broken run is left as it is
        self.folder.write_config(config.to_dict(), network_config.to_dict(), network_config.hash)
        self._open_tensorboard(purge_step=len(history) + 1)  # events are stepped by epoch, from 1
        manifest.resumed.append({"at": now(), "command": list(sys.argv), **resumed})
        manifest.status, manifest.ended, manifest.host, manifest.pid = "running", None, host_name(), os.getpid()
        self.manifest = manifest
        self.folder.write_manifest(manifest)
        self.folder.rewrite_metrics(history)

    def record_epoch(self, row: dict[str, Any]) -> None:
        """Append an epoch's metrics to ``metrics.csv`` and TensorBoard."""
        if not self.is_main:
            return
        self.folder.append_metrics(row)
        for key in TENSORBOARD_KEYS:
            self.writer.add_scalar(key, row[key], int(row["epoch"]))
        self.writer.flush()

    def finish(self, status: str, result: dict[str, Any]) -> None:
        """Record how the run ended in the manifest and close the TensorBoard log."""
        if not self.is_main or self.manifest is None:
            return
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.manifest.status, self.manifest.ended, self.manifest.result = status, now(), result
        self.folder.write_manifest(self.manifest)

    def close(self) -> None:
        """Flush and detach the log handlers."""
        close_logging(self.log)

    def _open_tensorboard(self, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.folder.tensorboard_dir), purge_step=purge_step)


def new_manifest(folder: RunFolder, data: TrainingData, network_config: NetworkConfig, device: str,
                 world_size: int, dev: bool, init: dict[str, Any] | None) -> RunManifest:
    """The manifest of a run that starts now (git state, packages, list files with their hashes and versions)."""
    lists: dict[str, Any] = {}
    for role, split in (("train", data.train), ("val", data.val)):
        reference = list_reference(split.list_path, file_sha256(split.list_path))
        entry = lists.setdefault(split.name, {"path": display_path(split.list_path), "sha256": reference.sha256,
                                              "samples": len(split), "role": role})
        entry.update({k: v for k, v in reference.to_dict().items() if k in ("version", "derived_from")})
        if entry["role"] != role:
            entry["role"] = "train"  # one list for both (--dev): it was trained on
    return RunManifest(
        run=folder.name, status="running", started=now(), command=list(sys.argv), host=host_name(),
        pid=os.getpid(), dev=dev, device=device, world_size=world_size,
        network={"name": network_config.name, "hash": network_config.hash},
        data={"dataset": display_path(data.dataset.root), "classes": list(data.dataset.class_names), "lists": lists},
        git=git_state(folder), packages=package_versions(TRAIN_PACKAGES), init=init,
    )


def git_state(folder: RunFolder) -> dict[str, Any]:
    """The repository's commit and dirty flag; a dirty tree's diff goes to ``git.diff``."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
                              timeout=30).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "diff": None, "note": "not a git checkout, or git is missing"}
    dirty = bool(status.strip())
    state: dict[str, Any] = {"commit": commit, "dirty": dirty, "diff": None}
    if dirty:
        untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
        header = "".join(f"# untracked: {path}\n" for path in untracked)
        atomic_write_text(folder.diff_path, header + git("diff", "HEAD"))
        state["diff"] = folder.diff_path.name
    return state


def setup_logging(log_file: Path | None, is_main: bool) -> logging.Logger:
    """The ``train`` logger: console (stdout) and, when given, a log file.

    Other processes than the main one under torchrun log warnings and errors only.
    """
    logger = logging.getLogger("train")
    close_logging(logger)
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    logger.propagate = False
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if log_file is not None:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(file_handler)
    return logger


def close_logging(logger: logging.Logger) -> None:
    """Flush and detach the logger's handlers."""
    for handler in list(logger.handlers):
        handler.flush()
        logger.removeHandler(handler)
        handler.close()
