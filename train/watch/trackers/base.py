"""The tracker interface, its registry, the fan-out the recorder writes through, and the trackers' hook.

A tracker is opened when a run starts (or resumes) and closed when it ends
(:class:`TrackersHook`, first in a run's hooks: it opens before anything of the run is
written and closes after its status is, sending the run's summary and files last). Steps are
optimiser steps: per-epoch metrics are logged at the step that ended the epoch, with
``epoch`` as a metric of its own. A tracker that fails while a run trains is switched
off with one warning: losing a dashboard is never worth losing the run.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import UserError
from common.files import file_sha256
from common.integrity import recorded_digests
from common.paths import display_path
from common.registry import Registry
from common.run_folder import MetricSpec, RunFolder, RunStatus
from train.loop.hooks import Hook, RunState

OPTIONAL_CATEGORY = 'pipenv sync --categories="train trackers"'
"""How to install the optional trackers (the Pipfile's ``[trackers]`` category)."""


@dataclass(frozen=True)
class RunInfo:
    """What a tracker is told when it opens.

    Attributes:
        folder: The run folder.
        config: The training config as plain values (``TrainConfig.to_dict()``).
        network: ``{"name", "hash"}`` of the network config.
        resumed_step: For a resumed run, the step it continues after (later events
            of an earlier attempt are dropped where the tracker can); None for a new run.
    """

    folder: RunFolder
    config: dict[str, Any]
    network: dict[str, Any]
    resumed_step: int | None = None

    @property
    def log(self) -> dict[str, Any]:
        """The config's ``log`` section."""
        return self.config["log"]


class Tracker:
    """One place a run's curves go. Opened by its constructor; every method is called on the main process only.

    Args:
        run: The run it tracks.

    Attributes:
        requires: Python packages it needs (checked before a run starts).
    """

    requires: tuple[str, ...] = ()

    def __init__(self, run: RunInfo):
        self.run = run

    @classmethod
    def preflight(cls, log: Mapping[str, Any]) -> None:
        """Check, within a few seconds, that this tracker can start with the run's ``log`` settings (before any
        run folder is made); the default checks nothing.

        Raises:
            UserError: Naming the setting and why it cannot start (an unreachable server, a refused address).
        """

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Scalars at an optimiser step."""
        raise NotImplementedError

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """An RGB image ``(H, W, 3) uint8`` (a grid or a figure) at a step."""
        raise NotImplementedError

    def log_histograms(self, values: Mapping[str, np.ndarray], step: int) -> None:
        """Distributions of values (weights, gradients) at a step; trackers without histograms ignore them."""

    def log_summary(self, hparams: Mapping[str, Any], metrics: Mapping[str, float], step: int) -> None:
        """The run's hyperparameters beside its final metrics (TensorBoard's HParams view, a W&B summary)."""
        raise NotImplementedError

    def log_files(self, paths: Sequence[Path]) -> None:
        """Copies of the run's files (config, manifest, curves, the best checkpoint's card); missing ones skipped."""
        raise NotImplementedError

    def log_card(self, name: str, card: Mapping[str, Any]) -> None:
        """A small JSON-ready record (the best checkpoint's card) under ``name``."""
        raise NotImplementedError

    def flush(self) -> None:
        """Send what is buffered (called at the end of each epoch)."""

    def close(self, status: RunStatus) -> None:
        """End the tracked run with the run's status."""
        raise NotImplementedError


TRACKERS: Registry[type[Tracker]] = Registry("tracker", "train.watch.trackers", Tracker)
"""Every tracker, by the name ``log.trackers`` uses."""


def check_trackers(names: Sequence[str]) -> list[type[Tracker]]:
    """The tracker classes ``log.trackers`` names, once their packages are known to be installed.

    Raises:
        UserError: For an unknown name (listing the known ones) or a missing package (naming the Pipfile category).
    """
    classes = [TRACKERS.get(name, "log.trackers: ") for name in names]
    for name, cls in zip(names, classes):
        missing = [package for package in cls.requires if importlib.util.find_spec(package) is None]
        if missing:
            raise UserError(f"log.trackers: {name!r} needs the {', '.join(missing)} package, which is not installed; "
                            f"install the optional trackers: {OPTIONAL_CATEGORY}")
    return classes


REACH_SECONDS = 5.0
"""How long a tracker's server may take to accept a connection before the run is refused."""


def check_reachable(url: str, setting: str) -> None:
    """Refuse an ``http(s)://`` server that does not accept a connection within :data:`REACH_SECONDS`.

    Raises:
        UserError: Naming the setting, the address and the reason.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=REACH_SECONDS):
            pass
    except OSError as exc:
        raise UserError(f"{setting}: {parts.hostname}:{port} cannot be reached ({exc.strerror or exc}) within "
                        f"{REACH_SECONDS:.0f} s; start the server, fix the address, or leave the tracker out "
                        "(log.trackers)") from None


def preflight_trackers(log: Mapping[str, Any]) -> None:
    """Check that every tracker of ``log.trackers`` is installed and can start, before any run folder is made.

    Raises:
        UserError: As :func:`check_trackers` and each tracker's :meth:`Tracker.preflight`.
    """
    for cls in check_trackers(log["trackers"]):
        cls.preflight(log)


class Trackers:
    """Every tracker of a run behind one interface; one that fails is switched off with a warning.

    Nothing is sent before :meth:`open` (what is logged then goes nowhere).

    Args:
        names: The trackers to open (``log.trackers``).
        log: Where warnings go.
    """

    def __init__(self, names: Sequence[str], log: logging.Logger):
        self.names, self.log = tuple(names), log
        self.active: dict[str, Tracker] = {}

    def open(self, run: RunInfo) -> None:
        """Open every tracker.

        Raises:
            UserError: When a tracker cannot be opened (an unknown name, a missing package, an unreachable
                server); the ones opened already are closed.
        """
        for name, cls in zip(self.names, check_trackers(self.names)):
            try:
                self.active[name] = cls(run)
            except UserError:
                self.close(RunStatus.FAILED)
                raise
            except Exception as exc:
                self.close(RunStatus.FAILED)
                raise UserError(f"log.trackers: {name} could not start: {type(exc).__name__}: {exc}") from exc

    def _each(self, method: str, *args: Any) -> None:
        for name, tracker in list(self.active.items()):
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:  # a dashboard is not worth the run
                self.log.warning("tracker %s failed (%s: %s); it is off for the rest of this run", name,
                                 type(exc).__name__, exc)
                self.active.pop(name)

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """See :meth:`Tracker.log_scalars`."""
        if values:
            self._each("log_scalars", values, step)

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """See :meth:`Tracker.log_image`."""
        self._each("log_image", tag, image, step)

    def log_histograms(self, values: Mapping[str, np.ndarray], step: int) -> None:
        """See :meth:`Tracker.log_histograms`."""
        self._each("log_histograms", values, step)

    def log_summary(self, hparams: Mapping[str, Any], metrics: Mapping[str, float], step: int) -> None:
        """See :meth:`Tracker.log_summary`."""
        self._each("log_summary", hparams, metrics, step)

    def log_files(self, paths: Sequence[Path]) -> None:
        """See :meth:`Tracker.log_files`."""
        self._each("log_files", [path for path in paths if path.is_file()])

    def log_card(self, name: str, card: Mapping[str, Any]) -> None:
        """See :meth:`Tracker.log_card`."""
        self._each("log_card", name, card)

    def flush(self) -> None:
        """See :meth:`Tracker.flush`."""
        self._each("flush")

    def close(self, status: RunStatus) -> None:
        """Close every tracker (each once)."""
        self._each("close", status)
        self.active.clear()


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"optim.lr": 0.001, ...}``: numbers, text and booleans; lists and None as text."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_params(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


class TrackersHook(Hook):
    """Opens the run's trackers, sends them every epoch's row, and at the end the summary, files and status.

    Args:
        trackers: The run's trackers (the recorder sends them the step-level values and figures).
        info: What they are told when they open.
        metrics: The run's declared metrics (the headline ones go to the summary as ``final/*``).
        folder: The run folder (its files go to the trackers at the end).
        is_main: Whether this process sends anything (rank 0).
    """

    name = "trackers"

    def __init__(self, trackers: Trackers, info: RunInfo, metrics: Sequence[MetricSpec], folder: RunFolder,
                 is_main: bool):
        self.trackers, self.info, self.metrics, self.folder, self.is_main = trackers, info, metrics, folder, is_main

    def before_run(self, run: RunState) -> None:
        """Open them (before anything of the run is written: one that cannot start stops the run there)."""
        if self.is_main:
            self.trackers.open(self.info)

    def after_epoch(self, run: RunState, row: dict[str, Any]) -> None:
        """The row's numbers at the epoch's last step, then a flush."""
        if not self.is_main:
            return
        with run.timer.phase("logging"):
            numbers = {key: float(value) for key, value in row.items()
                       if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)}
            self.trackers.log_scalars(numbers, int(row["step"]))
            self.trackers.flush()

    def after_run(self, run: RunState, status: RunStatus) -> None:
        """Hyperparameters beside the final and best metrics, the run's files, the best checkpoint's card; close."""
        if not self.is_main or not self.trackers.active:
            self.trackers.close(status)
            return
        result = run.result
        last, best = result.get("last") or {}, result.get("best")
        metrics = {f"final/{spec.name}": float(last[spec.name]) for spec in self.metrics
                   if spec.headline and spec.direction and spec.name in last}
        if best:
            metrics[f"best/{best['metric']}"] = float(best["value"])
            metrics["best/epoch"] = float(best["epoch"])
        hparams = {key: value for key, value in flat_params(self.info.config).items() if not key.startswith("log.")}
        self.trackers.log_summary(hparams, metrics, int(last.get("step", 0)))
        folder = self.folder
        self.trackers.log_files([folder.config_path, folder.manifest_path, folder.metrics_path, folder.steps_path,
                                 folder.per_class_path, folder.curves_path, folder.log_path])
        card = best_checkpoint_card(folder, best)
        if card is not None:
            self.trackers.log_card("best_checkpoint", card)
        self.trackers.close(status)


def best_checkpoint_card(folder: RunFolder, best: dict[str, Any] | None) -> dict[str, Any] | None:
    """What ``checkpoints/best.pt`` is, without loading it: epoch, metric, sha256 (from its sidecar), the run."""
    path = folder.checkpoints_dir / "best.pt"
    if best is None or not path.is_file():
        return None
    digests = recorded_digests(path)
    return {"file": display_path(path), "sha256": digests[0] if digests else file_sha256(path), "run": folder.name,
            "epoch": best["epoch"], "metric": best["metric"], "value": best["value"],
            "bytes": path.stat().st_size}
