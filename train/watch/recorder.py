"""The run's record: its status and its training metrics have one owner, :class:`RunRecorder`.

:class:`RunRecorder` writes ``config.yaml``, ``manifest.json`` (the run's status, as a
:class:`common.run_folder.RunStatus`), ``metrics.csv`` (the declared metrics of
:mod:`train.metrics`), ``steps.csv``, ``per_class.csv``, the figures and ``log.txt``
of a run folder, through :class:`common.run_folder.RunFolder` (which knows the
layout), and hands scalars, images and histograms to the run's trackers
(:class:`train.watch.trackers.base.Trackers`, opened and closed by their own hook).
:class:`RecordHook` records the run's start and how it ended, :class:`MetricsHook`
every epoch's row. Only the main process writes; other processes under torchrun log
warnings and errors only.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from common.files import atomic_write_text, file_sha256
from common.list_versions import list_reference
from common.paths import PROJECT_ROOT, display_path
from common.plotting import png_bytes
from common.provenance import host_name, now, package_versions
from common.run_folder import MetricSpec, RunFolder, RunManifest, RunStatus
from networks.config import NetworkConfig
from train.config import TrainConfig
from train.data.loading import TrainingData
from train.loop.hooks import Hook, RunState
from train.metrics import EPOCH_METRICS
from train.watch.trackers.base import Trackers

TRAIN_PACKAGES = ("torch", "torchvision", "timm", "numpy", "pillow", "omegaconf", "tensorboard", "scikit-learn",
                  "tqdm")
"""Packages whose versions a run's manifest records."""


class RunRecorder:
    """Writes a run's config, manifest, metrics, figures and log, and hands what it logs to the trackers.

    Args:
        folder: The run folder.
        is_main: Whether this process writes (rank 0).
        trackers: The run's trackers (their own hook opens and closes them).

    Attributes:
        metrics: The run's declared metrics (the columns of its ``metrics.csv``).
    """

    def __init__(self, folder: RunFolder, is_main: bool, trackers: Trackers | None = None):
        self.folder = folder
        self.is_main = is_main
        self.trackers = trackers
        self.log = setup_logging(folder.log_path if is_main else None, is_main)
        self.manifest: RunManifest | None = None
        self.metrics: tuple[MetricSpec, ...] = EPOCH_METRICS

    def start(self, config: TrainConfig, network_config: NetworkConfig, manifest: RunManifest) -> None:
        """Record a new run: write ``config.yaml`` and ``manifest.json`` (status ``running``, its metrics)."""
        if not self.is_main:
            return
        self.folder.write_config(config.to_dict(), network_config.to_dict(), network_config.hash)
        manifest.metrics = [spec.to_dict() for spec in self.metrics]
        self.manifest = manifest
        self.folder.write_manifest(manifest)

    def resume(self, config: TrainConfig, network_config: NetworkConfig, history: list[dict[str, Any]],
               resumed: dict[str, Any], step: int) -> None:
        """Record a resumed run: the config as resumed, a ``resumed`` manifest entry, metrics, logged steps and
        per-class rows cut back to ``history`` and ``step``."""
        if not self.is_main:
            return
        manifest = self.folder.read_manifest()  # before anything is written: a broken run is left as it is
        self.folder.write_config(config.to_dict(), network_config.to_dict(), network_config.hash)
        manifest.resumed.append({"at": now(), "command": list(sys.argv), **resumed})
        manifest.status, manifest.ended, manifest.host, manifest.pid = RunStatus.RUNNING, None, host_name(), os.getpid()
        manifest.metrics = [spec.to_dict() for spec in self.metrics]
        self.manifest = manifest
        self.folder.write_manifest(manifest)
        self.folder.rewrite_metrics(history, self.metrics)
        self.folder.cut_back(step, len(history))

    def record_epoch(self, row: dict[str, Any]) -> None:
        """Append an epoch's row to ``metrics.csv``.

        Raises:
            ValueError: When the row holds a metric :mod:`train.metrics` does not declare.
        """
        if self.is_main:
            self.folder.append_metrics(row, self.metrics)

    def record_steps(self, rows: list[dict[str, Any]]) -> None:
        """Append logged steps to ``steps.csv`` (they went to the trackers when logged)."""
        if self.is_main:
            self.folder.append_steps(rows)

    def record_per_class(self, rows: list[dict[str, Any]]) -> None:
        """Append an epoch's per-class validation figures to ``per_class.csv``."""
        if self.is_main:
            self.folder.append_per_class(rows)

    def log_scalars(self, values: Mapping[str, Any], step: int) -> None:
        """Numbers to every tracker at an optimiser step (other values are left out)."""
        if self.is_main and self.trackers is not None:
            numbers = {key: float(value) for key, value in values.items()
                       if isinstance(value, (int, float)) and not isinstance(value, bool)}
            self.trackers.log_scalars(numbers, step)

    def log_image(self, tag: str, image: np.ndarray, step: int, path: Path | None = None) -> None:
        """An RGB figure ``(H, W, 3) uint8`` to every tracker and, when given, to ``path`` in the run folder as PNG."""
        if not self.is_main:
            return
        if path is not None:
            self.folder.write_figure(path, png_bytes(image))
        if self.trackers is not None:
            self.trackers.log_image(tag, image, step)

    def write_figure(self, path: Path, image: np.ndarray) -> None:
        """An RGB figure ``(H, W, 3) uint8`` to ``path`` in the run folder as PNG (the trackers do not get it)."""
        if self.is_main:
            self.folder.write_figure(path, png_bytes(image))

    def log_histograms(self, values: Mapping[str, np.ndarray], step: int) -> None:
        """Histograms to the trackers that draw them."""
        if self.is_main and self.trackers is not None:
            self.trackers.log_histograms(values, step)

    def finish(self, status: RunStatus, result: dict[str, Any]) -> None:
        """Record how the run ended in the manifest: its status, end time and result."""
        if not self.is_main or self.manifest is None:
            return
        self.manifest.status, self.manifest.ended, self.manifest.result = status, now(), result
        self.folder.write_manifest(self.manifest)

    def close(self) -> None:
        """Flush and detach the log handlers."""
        close_logging(self.log)


class RecordHook(Hook):
    """The run's record as a hook: its start (or resume) and how it ended (its status and result).

    Args:
        recorder: The run's recorder.
        start: Writes the record of the run's start (:meth:`RunRecorder.start` or :meth:`RunRecorder.resume`
            with their arguments), called in ``before_run``.
    """

    name = "record"

    def __init__(self, recorder: RunRecorder, start: Callable[[], None]):
        self.recorder, self.start = recorder, start

    def before_run(self, run: RunState) -> None:
        """Write the config and the manifest (status ``running``)."""
        self.start()

    def after_run(self, run: RunState, status: RunStatus) -> None:
        """The status and the result (with what the other hooks added) into the manifest."""
        data = run.trainer.data
        unreadable = {split.name: split.unreadable for split in (data.train, data.val) if split.unreadable}
        self.recorder.finish(status, {**run.result, "unreadable": unreadable})


class MetricsHook(Hook):
    """Every epoch's row into ``metrics.csv``, through the run's recorder, once the epoch's checkpoints are
    written (so every row of ``metrics.csv`` is one a resume can continue from).

    Args:
        recorder: The run's recorder.
    """

    name = "metrics"

    def __init__(self, recorder: RunRecorder):
        self.recorder = recorder

    def after_epoch(self, run: RunState, row: dict[str, Any]) -> None:
        """The row into ``metrics.csv``."""
        with run.timer.phase("logging"):
            self.recorder.record_epoch(row)


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
        run=folder.name, status=RunStatus.RUNNING, started=now(), command=list(sys.argv), host=host_name(),
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
