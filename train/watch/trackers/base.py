"""The tracker interface, its registry, and the fan-out the recorder writes through.

A tracker is opened when a run starts (or resumes) and closed when it ends. Steps are
optimiser steps: per-epoch metrics are logged at the step that ended the epoch, with
``epoch`` as a metric of its own. A tracker that fails while a run trains is switched
off with one warning: losing a dashboard is never worth losing the run.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import UserError
from common.registry import Registry
from common.run_folder import RunFolder

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

    def close(self, status: str) -> None:
        """End the tracked run with the run's status (``finished``, ``failed``, ...)."""
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


class Trackers:
    """Every tracker of a run behind one interface; one that fails is switched off with a warning.

    Args:
        run: The run.
        names: The trackers to open (``log.trackers``).
        log: Where warnings go.

    Raises:
        UserError: When a tracker cannot be opened (an unknown name, a missing package, an unreachable server).
    """

    def __init__(self, run: RunInfo, names: Sequence[str], log: logging.Logger):
        self.log = log
        self.active: dict[str, Tracker] = {}
        for name, cls in zip(names, check_trackers(names)):
            try:
                self.active[name] = cls(run)
            except UserError:
                self.close("failed")
                raise
            except Exception as exc:
                self.close("failed")
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

    def close(self, status: str) -> None:
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
