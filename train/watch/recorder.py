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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from common.files import atomic_write_text, file_sha256
from common.integrity import recorded_digests
from common.list_versions import list_reference
from common.paths import PROJECT_ROOT, display_path
from common.provenance import host_name, now, package_versions
from common.run_folder import RunFolder, RunManifest
from networks.config import NetworkConfig
from train.config import TrainConfig
from train.data.loading import TrainingData
from train.watch.plots import png_bytes
from train.watch.trackers.base import RunInfo, Trackers, flat_params

TRAIN_PACKAGES = ("torch", "torchvision", "timm", "numpy", "pillow", "omegaconf", "tensorboard", "scikit-learn",
                  "tqdm")
"""Packages whose versions a run's manifest records."""

FINAL_METRICS = ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/macro_f1")
"""Metrics of the last epoch that a run's summary (TensorBoard's HParams view, W&B, MLflow) shows as ``final/*``."""


class RunRecorder:
    """Writes a run's config, manifest, metrics, figures and log, and feeds its trackers.

    Args:
        folder: The run folder.
        is_main: Whether this process writes (rank 0).
    """

    def __init__(self, folder: RunFolder, is_main: bool):
        self.folder = folder
        self.is_main = is_main
        self.log = setup_logging(folder.log_path if is_main else None, is_main)
        self.manifest: RunManifest | None = None
        self.trackers: Trackers | None = None
        self.config: TrainConfig | None = None

    def start(self, config: TrainConfig, network_config: NetworkConfig, manifest: RunManifest) -> None:
        """Record a new run: open its trackers, then write ``config.yaml`` and ``manifest.json``.

        Raises:
            UserError: When a tracker cannot start (nothing of the run is written then).
        """
        if not self.is_main:
            return
        self._open_trackers(config, network_config, resumed_step=None)
        self.folder.write_config(config.to_dict(), network_config.to_dict(), network_config.hash)
        self.manifest = manifest
        self.folder.write_manifest(manifest)

    def resume(self, config: TrainConfig, network_config: NetworkConfig, history: list[dict[str, Any]],
               resumed: dict[str, Any], step: int) -> None:
        """Record a resumed run: the config as resumed, a ``resumed`` manifest entry, metrics, logged steps,
        per-class rows and tracker events cut back to ``history`` and ``step``."""
        if not self.is_main:
            return
        manifest = self.folder.read_manifest()  # before anything is written: a broken run is left as it is
        self._open_trackers(config, network_config, resumed_step=step)
        self.folder.write_config(config.to_dict(), network_config.to_dict(), network_config.hash)
        manifest.resumed.append({"at": now(), "command": list(sys.argv), **resumed})
        manifest.status, manifest.ended, manifest.host, manifest.pid = "running", None, host_name(), os.getpid()
        self.manifest = manifest
        self.folder.write_manifest(manifest)
        self.folder.rewrite_metrics(history)
        self.folder.cut_back(step, len(history))

    def record_epoch(self, row: dict[str, Any]) -> None:
        """Append an epoch's metrics to ``metrics.csv`` and send them to the trackers (at the epoch's last step)."""
        if not self.is_main:
            return
        self.folder.append_metrics(row)
        self.log_scalars({key: value for key, value in row.items() if key != "step"}, int(row["step"]))
        if self.trackers is not None:
            self.trackers.flush()

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

    def finish(self, status: str, result: dict[str, Any]) -> None:
        """Record how the run ended in the manifest; send the trackers the summary and files, and close them."""
        if not self.is_main or self.manifest is None:
            return
        self.manifest.status, self.manifest.ended, self.manifest.result = status, now(), result
        self.folder.write_manifest(self.manifest)
        if self.trackers is not None:
            self._summarise(result)
            self.trackers.close(status)
            self.trackers = None

    def close(self, status: str = "failed") -> None:
        """Close any tracker still open, then flush and detach the log handlers."""
        if self.trackers is not None:
            self.trackers.close(status)
            self.trackers = None
        close_logging(self.log)

    def _open_trackers(self, config: TrainConfig, network_config: NetworkConfig, resumed_step: int | None) -> None:
        info = RunInfo(self.folder, config.to_dict(), {"name": network_config.name, "hash": network_config.hash},
                       resumed_step)
        self.config = config
        self.trackers = Trackers(info, config.log.trackers, self.log)

    def _summarise(self, result: dict[str, Any]) -> None:
        """Hyperparameters beside the final and best metrics, the run's files, the best checkpoint's card."""
        assert self.trackers is not None and self.config is not None
        last, best = result.get("last") or {}, result.get("best")
        metrics = {f"final/{key}": float(last[key]) for key in FINAL_METRICS if key in last}
        if best:
            metrics[f"best/{best['metric']}"] = float(best["value"])
            metrics["best/epoch"] = float(best["epoch"])
        hparams = {key: value for key, value in flat_params(self.config.to_dict()).items() if not key.startswith("log.")}
        self.trackers.log_summary(hparams, metrics, int(last.get("step", 0)))
        folder = self.folder
        self.trackers.log_files([folder.config_path, folder.manifest_path, folder.metrics_path, folder.steps_path,
                                 folder.per_class_path, folder.curves_path, folder.log_path])
        card = best_checkpoint_card(folder, best)
        if card is not None:
            self.trackers.log_card("best_checkpoint", card)


def best_checkpoint_card(folder: RunFolder, best: dict[str, Any] | None) -> dict[str, Any] | None:
    """What ``checkpoints/best.pt`` is, without loading it: epoch, metric, sha256 (from its sidecar), the run."""
    path = folder.checkpoints_dir / "best.pt"
    if best is None or not path.is_file():
        return None
    digests = recorded_digests(path)
    return {"file": display_path(path), "sha256": digests[0] if digests else file_sha256(path), "run": folder.name,
            "epoch": best["epoch"], "metric": best["metric"], "value": best["value"],
            "bytes": path.stat().st_size}


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
