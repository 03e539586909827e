"""A training run's folder ``output/train/<run>/``, and its one owner :class:`RunFolder`.

::

    config.yaml        the complete resolved training config (network config inline, with its hash)
    manifest.json      status, times, host and pid, git state, package versions, list-file hashes, result
    git.diff           uncommitted changes when the tree was dirty
    log.txt            what the console showed
    metrics.csv        one row per epoch (losses, accuracies, learning rate, time breakdown, system figures)
    steps.csv          the training loss, learning rate and gradient norm every few steps
    per_class.csv      validation precision, recall and F1 of each class, per epoch
    curves.png         losses, accuracies, learning rate and per-class F1, redrawn as the run goes
    samples/           train_batch.png (an augmented batch), val_worst.png, confusion.png
    tensorboard/       TensorBoard events
    profile/           with ``train --profile``: the trace (TensorBoard, Perfetto) and the breakdown
    wandb/             with the wandb tracker: its run files
    checkpoints/       last.pt, best.pt, epoch=NNNN-<metric>=<value>.pt (top-k)

Training writes these files through :class:`RunFolder` (its recorder calls the
``write_*`` methods); deployment, ``pipenv run runs``, resume and sweeps read them
through it. No other module parses a run's files. Reading needs no torch; the
checkpoints themselves are read by ``networks.checkpoint``.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from collections.abc import Sequence
from typing import Any, ContextManager

from common.cli import check_name_length
from common.errors import UserError
from common.files import (
    append_csv,
    atomic_write_bytes,
    atomic_write_text,
    read_csv,
    read_json,
    read_yaml,
    write_csv,
    write_json,
    yaml_text,
)
from common.locks import exclusive, holder
from common.paths import display_path, output_dir
from common.provenance import host_name, moment, process_alive, stamp

MANIFEST_VERSION = 1
"""The ``manifest.json`` layout this code writes and reads (a manifest without the field is version 1)."""

class RunStatus(StrEnum):
    """How a training run stands; the only place a run's status is spelled (``manifest.json`` holds its value)."""

    RUNNING = "running"
    """Training now (or its process died without saying so: see :meth:`RunFolder.status`)."""
    FINISHED = "finished"
    """Trained every epoch."""
    STOPPED_EARLY = "stopped_early"
    """Early stopping ended it: the monitored metric stopped improving."""
    PRUNED = "pruned"
    """A sweep's pruner ended it (a poor trial)."""
    PROFILED = "profiled"
    """``train --profile`` ended it after the profiled steps."""
    DIVERGED = "diverged"
    """The loss became NaN or infinite; the last good checkpoint is kept."""
    INTERRUPTED = "interrupted"
    """SIGINT (Ctrl-C) stopped it; ``last.pt`` continues it."""
    PREEMPTED = "preempted"
    """Another signal of ``checkpoint.signals`` stopped it (a scheduler's preemption); ``last.pt`` continues it."""
    FAILED = "failed"
    """A problem with its input stopped it (the message says which)."""
    CRASHED = "crashed"
    """An error, or a process that died, stopped it."""

    @property
    def ended(self) -> bool:
        """Ended by design: ``--auto-resume`` never trains it again."""
        return self in ENDED

    @property
    def resumable(self) -> bool:
        """Stopped before its end: with a ``last.pt`` it continues from there."""
        return self in RESUMABLE

    @property
    def succeeded(self) -> bool:
        """Ended by design, and not by divergence (what trackers report as a success)."""
        return self.ended and self is not RunStatus.DIVERGED


ENDED = frozenset({RunStatus.FINISHED, RunStatus.STOPPED_EARLY, RunStatus.PRUNED, RunStatus.PROFILED,
                   RunStatus.DIVERGED})
"""Statuses of a run that ended by design."""

RESUMABLE = frozenset({RunStatus.INTERRUPTED, RunStatus.PREEMPTED, RunStatus.CRASHED, RunStatus.FAILED})
"""Statuses of a run that stopped before its end (``running`` is neither: it has not stopped)."""

REDUCTIONS = ("mean", "sum", "global", "main")
"""How a training metric is combined across the processes of a run: ``mean`` (the sum of each process's
total over the sum of its counts), ``sum`` (the sum of each process's value), ``global`` (computed from state
already combined across processes, so the same on every one), ``main`` (the main process's own measurement)."""


@dataclass(frozen=True)
class MetricSpec:
    """A training metric, declared once (``train/metrics.py``) and recorded in each run's manifest.

    A run's ``metrics.csv`` has the columns ``epoch``, ``step`` and one per declared metric, in order.

    Attributes:
        name: Its ``metrics.csv`` column and tracker key, e.g. ``val/accuracy``.
        label: How figures and tables name it.
        reduce: One of :data:`REDUCTIONS`.
        direction: ``max`` or ``min`` (which way is better), or None for a measurement that is no score.
        monitor: Whether ``checkpoint.monitor`` (and so early stopping and sweeps) may name it.
        panel: The panel of ``curves.png`` that draws it (``loss``, ``accuracy``, ``lr``), or None.
        headline: Shown by ``runs show`` and ``runs diff`` and sent to the trackers' summary as ``final/*``.
        machine: Measures the machine, not the training (the only columns that differ between a resumed run
            and the same run made in one go).
    """

    name: str
    label: str
    reduce: str
    direction: str | None = None
    monitor: bool = False
    panel: str | None = None
    headline: bool = False
    machine: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (the manifest's ``metrics`` entries)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> MetricSpec:
        """One of a manifest's ``metrics`` entries.

        Raises:
            UserError: Naming the file when the entry is not a metric declaration.
        """
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or set(data) - known:
            raise UserError(f"{source}: metrics: {data!r} is not a metric declaration ({sorted(known)})")
        return cls(**{"label": data["name"], "reduce": "global", **data})


STEP_COLUMNS = ("step", "epoch", "train/loss", "lr", "grad_norm", "samples_per_second")
"""Columns of ``steps.csv`` (``epoch`` is fractional: the step's position in the run, in epochs)."""

PER_CLASS_COLUMNS = ("epoch", "class", "name", "precision", "recall", "f1", "support")
"""Columns of ``per_class.csv``: one row per epoch and class (``class`` is the label, ``name`` its name)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def runs_root() -> Path:
    """``<output>/train``: where training runs live."""
    return output_dir() / "train"


@dataclass
class RunManifest:
    """``manifest.json``: what a run is and how it went.

    Attributes:
        run: The run's folder name.
        status: How the run stands (:class:`RunStatus`).
        started: Start time (ISO 8601).
        ended: End time, or None while running.
        command: The command line.
        host: The host that trains (or trained) it.
        pid: The training process.
        dev: Whether it trains on the dev split.
        device: The training device.
        world_size: Number of processes.
        network: ``{"name", "hash"}`` of the network config.
        data: ``{"dataset", "classes", "lists": {split: {"path", "sha256", "samples"}}}``.
        git: ``{"commit", "dirty", "diff"}``.
        packages: Package versions.
        init: How the initial weights were loaded (file, sha256, load report), or None.
        result: ``{"epochs_completed", "best", "last", "error"}`` once it ended; after a
            signal also ``signal`` and ``position`` (``epoch`` completed, ``step_in_epoch``,
            ``steps_per_epoch``).
        resumed: One entry per resume.
        metrics: The run's training metrics (:class:`MetricSpec` as plain values), the columns of its
            ``metrics.csv``; a run written before metrics were declared has none (see :meth:`metric_specs`).
        format_version: :data:`MANIFEST_VERSION`.
    """

    run: str
    status: RunStatus
    started: str
    ended: str | None = None
    command: list[str] = field(default_factory=list)
    host: str | None = None
    pid: int | None = None
    dev: bool = False
    device: str = ""
    world_size: int = 1
    network: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    init: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    resumed: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    format_version: int = MANIFEST_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> RunManifest:
        """Validate a parsed ``manifest.json``.

        Raises:
            UserError: For an unknown version, a missing ``run``/``status``/``started``, or an unknown field.
        """
        if not isinstance(data, dict):
            raise UserError(f"{source}: expected a JSON object")
        version = data.get("format_version", MANIFEST_VERSION)
        if version != MANIFEST_VERSION:
            raise UserError(f"{source}: manifest format_version {version!r}; this code reads {MANIFEST_VERSION}")
        missing = [key for key in ("run", "status", "started") if not isinstance(data.get(key), str)]
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if missing or unknown:
            detail = "; ".join(filter(None, [missing and f"missing {missing}", unknown and f"unknown {unknown}"]))
            raise UserError(f"{source}: not a run manifest of this project ({detail})")
        try:
            status = RunStatus(data["status"])
        except ValueError:
            raise UserError(f"{source}: status {data['status']!r} is not one of "
                            f"{[s.value for s in RunStatus]}") from None
        manifest = cls(**{**data, "status": status})
        manifest.metric_specs(source)  # a broken declaration is named on reading
        return manifest

    def metric_specs(self, source: str = "manifest.json") -> tuple[MetricSpec, ...]:
        """The run's declared training metrics (empty for a run written before metrics were declared)."""
        if not isinstance(self.metrics, list):
            raise UserError(f"{source}: metrics: expected a list of metric declarations")
        return tuple(MetricSpec.from_dict(entry, source) for entry in self.metrics)


PINNED_KEYS = ("network_hash", "network_config")
"""Keys of a run's ``config.yaml`` that pin the exact network config used (beside the training config's keys)."""

RUN_CONFIG_KEYS = ("network", "data.dataset", "data.train_split", "data.val_split", "data.dev_split",
                   "data.on_unreadable", "checkpoint.monitor", "checkpoint.mode")
"""The keys of a run's config that other stages rely on (:class:`RunConfig`)."""


@dataclass(frozen=True)
class RunConfig:
    """A run's ``config.yaml`` as plain values: what deployment, ``runs`` and evaluation read of it.

    The typed training config (``train.config.TrainConfig``, merged and validated by
    OmegaConf) is training's own; this view needs only PyYAML, so every machine can
    read a run.

    Attributes:
        values: Every training config key, as written (without the pinned keys).
        network_hash: Hash of the network config the run trained (None when not pinned).
        network_config: That network config, when pinned.
    """

    values: dict[str, Any]
    network_hash: str | None = None
    network_config: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> RunConfig:
        """Validate the keys other stages rely on (:data:`RUN_CONFIG_KEYS`).

        Raises:
            UserError: Naming the file and each missing or non-text key.
        """
        values = {key: value for key, value in data.items() if key not in PINNED_KEYS}
        config = cls(values, data.get("network_hash"), data.get("network_config"))
        bad = [key for key in RUN_CONFIG_KEYS if not isinstance(config.get(key), str)]
        if bad:
            raise UserError(f"{source}: not a run config of this project: {', '.join(bad)} missing or not text")
        return config

    def get(self, dotted: str) -> Any:
        """The value at a dotted key (``data.dataset``), or None."""
        value: Any = self.values
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    @property
    def dataset(self) -> str:
        """``data.dataset``: the data set's name under the data folder, or its path."""
        return self.get("data.dataset")

    @property
    def network(self) -> str:
        """``network``: the shared network config's name (or path)."""
        return self.get("network")

    def split(self, which: str) -> str:
        """The list name of ``train``, ``val`` or ``dev`` (``data.<which>_split``)."""
        return self.get(f"data.{which}_split")

    @property
    def on_unreadable(self) -> str:
        """``data.on_unreadable``: the unreadable-image policy the run trained with."""
        return self.get("data.on_unreadable")


class RunFolder:
    """One training run's folder: where each file is, and the only reader and writer of them.

    Args:
        path: The run folder.

    Attributes:
        path: The run folder.
        name: The run's name (the folder's name).
        config_path: ``config.yaml``.
        manifest_path: ``manifest.json``.
        metrics_path: ``metrics.csv``.
        log_path: ``log.txt``.
        diff_path: ``git.diff``.
        steps_path: ``steps.csv``.
        per_class_path: ``per_class.csv``.
        curves_path: ``curves.png``.
        samples_dir: ``samples/`` (``train_batch.png``, ``val_worst.png``, ``confusion.png``).
        tensorboard_dir: ``tensorboard/``.
        profile_dir: ``profile/``.
        wandb_dir: ``wandb/``.
        checkpoints_dir: ``checkpoints/``.
        lock_path: ``.lock``, held by the process that trains in the folder.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = self.path.name
        self.config_path = self.path / "config.yaml"
        self.manifest_path = self.path / "manifest.json"
        self.metrics_path = self.path / "metrics.csv"
        self.log_path = self.path / "log.txt"
        self.diff_path = self.path / "git.diff"
        self.steps_path = self.path / "steps.csv"
        self.per_class_path = self.path / "per_class.csv"
        self.curves_path = self.path / "curves.png"
        self.samples_dir = self.path / "samples"
        self.tensorboard_dir = self.path / "tensorboard"
        self.profile_dir = self.path / "profile"
        self.wandb_dir = self.path / "wandb"
        self.checkpoints_dir = self.path / "checkpoints"
        self.lock_path = self.path / ".lock"

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @classmethod
    def create(cls, name: str, root: Path | None = None) -> RunFolder:
        """Create ``<root>/<name>-<YYYYmmdd-HHMMSS>/``; never reuses an existing folder.

        Raises:
            UserError: When ``name`` has characters other than letters, digits, ``.``, ``_``, ``-``.
        """
        if not _NAME.match(name):
            raise UserError(f"--name {name!r}: use letters, digits, '.', '_' and '-' only")
        check_name_length(name, "--name", added=len(f"-{stamp()}-999"))
        root = root or runs_root()
        root.mkdir(parents=True, exist_ok=True)
        when = stamp()
        for attempt in range(1, 1000):
            candidate = root / (f"{name}-{when}" if attempt == 1 else f"{name}-{when}-{attempt}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            (candidate / "checkpoints").mkdir()
            return cls(candidate)
        raise UserError(f"{display_path(root)}: could not find a free run folder name for {name!r}")

    def checkpoint_path(self, which: str) -> Path:
        """``best`` or ``last`` of this run, or a path to a checkpoint file.

        Raises:
            UserError: When this run has no such checkpoint.
        """
        if which not in ("best", "last"):
            return Path(which)
        path = self.checkpoints_dir / f"{which}.pt"
        if not path.is_file():
            raise UserError(f"{display_path(path)}: no {which} checkpoint in this run (did an epoch finish?)")
        return path

    # -- reading -------------------------------------------------------------------------
    def read_run_config(self) -> RunConfig:
        """What other stages read from ``config.yaml`` (no OmegaConf; training reads the whole typed config
        with ``train.config.load_train_config(folder.config_path)``).

        Raises:
            UserError: When ``config.yaml`` is missing, not YAML, or lacks a key named in :class:`RunConfig`.
        """
        return RunConfig.from_dict(read_yaml(self.config_path, "training config keys"), display_path(self.config_path))

    def read_manifest(self) -> RunManifest:
        """``manifest.json``, validated.

        Raises:
            UserError: When it is missing, not JSON, or not a run manifest.
        """
        return RunManifest.from_dict(read_json(self.manifest_path, "unreadable run manifest"),
                                     display_path(self.manifest_path))

    def read_metrics(self) -> list[dict[str, float]]:
        """``metrics.csv`` as numbers, one dict per epoch (empty before the first epoch ends).

        Raises:
            UserError: Naming the line of a value that is not a number.
        """
        return _read_numbers(self.metrics_path)

    def read_steps(self) -> list[dict[str, float]]:
        """``steps.csv`` as numbers, one dict per logged step (empty when there is none).

        Raises:
            UserError: Naming the line of a value that is not a number.
        """
        return _read_numbers(self.steps_path)

    def read_per_class(self) -> list[dict[str, Any]]:
        """``per_class.csv``: one dict per epoch and class, ``name`` as text and the rest as numbers.

        Raises:
            UserError: Naming the line of a value that is not a number.
        """
        return _read_numbers(self.per_class_path, text_columns=("name",))

    def best(self, manifest: RunManifest | None = None) -> dict[str, Any] | None:
        """``{"metric", "value", "epoch"}`` of the best epoch: from the manifest's result,
        else from ``metrics.csv`` and the config's ``checkpoint.monitor``/``mode``."""
        manifest = manifest or self.read_manifest()
        if manifest.result and manifest.result.get("best"):
            return manifest.result["best"]
        config = self.read_run_config()
        monitor, mode = config.get("checkpoint.monitor"), config.get("checkpoint.mode")
        rows = [r for r in self.read_metrics() if math.isfinite(r.get(monitor, math.nan))]
        if not rows:
            return None
        pick = max if mode == "max" else min
        row = pick(rows, key=lambda r: r[monitor])
        return {"metric": monitor, "value": row[monitor], "epoch": int(row["epoch"])}

    def status(self, manifest: RunManifest | None = None) -> RunStatus:
        """The effective status: a ``running`` run whose lock nobody holds is ``crashed``.

        Runs written before runs were locked fall back to :func:`effective_status`.
        """
        manifest = manifest or self.read_manifest()
        if manifest.status is not RunStatus.RUNNING or not self.lock_path.exists():
            return effective_status(manifest)
        return RunStatus.RUNNING if holder(self.lock_path) is not None else RunStatus.CRASHED

    def exclusive(self) -> ContextManager[None]:
        """Hold the run's lock while training in it (see :mod:`common.locks`).

        Raises:
            UserError: When another process trains in it, naming its host and pid.
        """
        return exclusive(self.lock_path, f"run {display_path(self.path)}")

    # -- writing (training's recorder) ---------------------------------------------------
    def write_config(self, values: dict[str, Any], network_config: dict[str, Any], network_hash: str) -> None:
        """Write ``config.yaml``: the resolved training config with the network config pinned inline.

        Args:
            values: The run's training config as plain values (``TrainConfig.to_dict()``).
            network_config: The resolved network config (``NetworkConfig.to_dict()``).
            network_hash: Its hash.
        """
        header = (f"# Resolved training config of run {self.name}, written by `pipenv run train`.\n"
                  f"# Repeat the run: pipenv run train --config {display_path(self.config_path)}\n")
        body = yaml_text({**values, "network_hash": network_hash, "network_config": network_config})
        atomic_write_text(self.config_path, header + body)

    def write_manifest(self, manifest: RunManifest) -> None:
        """Write ``manifest.json`` atomically."""
        write_json(self.manifest_path, manifest.to_dict())

    def rewrite_metrics(self, rows: list[dict[str, Any]], metrics: Sequence[MetricSpec]) -> None:
        """Replace ``metrics.csv`` with exactly these rows (when a run resumes), in the run's declared columns.

        Raises:
            ValueError: When a row holds a value no declaration names (a metric must be declared to be kept).
        """
        columns = metric_columns(metrics)
        write_csv(self.metrics_path, columns, [_declared_cells(row, columns) for row in rows])

    def append_metrics(self, row: dict[str, Any], metrics: Sequence[MetricSpec]) -> None:
        """Add one epoch's row in the run's declared columns (creating the file with its header when needed).

        Raises:
            ValueError: When the row holds a value no declaration names.
        """
        columns = metric_columns(metrics)
        append_csv(self.metrics_path, columns, [_declared_cells(row, columns)])

    def append_steps(self, rows: list[dict[str, Any]]) -> None:
        """Add logged steps to ``steps.csv`` (creating it with its header when needed)."""
        if rows:
            append_csv(self.steps_path, STEP_COLUMNS, [_metric_cells(row, STEP_COLUMNS) for row in rows])

    def append_per_class(self, rows: list[dict[str, Any]]) -> None:
        """Add one epoch's per-class rows to ``per_class.csv`` (creating it with its header when needed)."""
        if rows:
            append_csv(self.per_class_path, PER_CLASS_COLUMNS, [_metric_cells(row, PER_CLASS_COLUMNS) for row in rows])

    def cut_back(self, step: int, epoch: int) -> None:
        """Keep only what a resumed run continues from: logged steps up to ``step``, per-class rows up to ``epoch``."""
        if self.steps_path.is_file():
            steps = [row for row in self.read_steps() if row["step"] <= step]
            write_csv(self.steps_path, STEP_COLUMNS, (_metric_cells(row, STEP_COLUMNS) for row in steps))
        if self.per_class_path.is_file():
            kept = [row for row in self.read_per_class() if row["epoch"] <= epoch]
            write_csv(self.per_class_path, PER_CLASS_COLUMNS, (_metric_cells(r, PER_CLASS_COLUMNS) for r in kept))

    def write_figure(self, path: Path, png: bytes) -> None:
        """Write a PNG figure of the run (``curves.png`` or one under ``samples/``) atomically."""
        atomic_write_bytes(path, png)


def metric_columns(metrics: Sequence[MetricSpec]) -> tuple[str, ...]:
    """The columns of ``metrics.csv`` for these declarations: ``epoch``, ``step``, then each metric in order."""
    return ("epoch", "step", *(spec.name for spec in metrics))


def _declared_cells(row: dict[str, Any], columns: tuple[str, ...]) -> list[Any]:
    undeclared = sorted(set(row) - set(columns))
    if undeclared:
        raise ValueError(f"metrics {undeclared} are not declared (train/metrics.py declares a run's metrics)")
    return _metric_cells(row, columns)


def _metric_cells(row: dict[str, Any], columns: tuple[str, ...]) -> list[Any]:
    """A row's cells in ``columns`` order (empty where the row has no value)."""
    return [row.get(column, "") for column in columns]


def _read_numbers(path: Path, text_columns: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """A CSV file of the run as dicts of numbers (``text_columns`` kept as text); empty when it is missing.

    Raises:
        UserError: Naming the line of a value that is not a number.
    """
    if not path.is_file():
        return []
    header, *lines = read_csv(path) or [[]]
    rows = []
    for number, line in enumerate(lines, start=2):
        try:
            rows.append({key: value if key in text_columns else float(value)
                         for key, value in zip(header, line) if key and value != ""})
        except ValueError as exc:
            raise UserError(f"{display_path(path)}:{number}: {exc}") from None
    return rows


def resume_command(run_dir: Path, world_size: int = 1) -> str:
    """The command that continues a run from its ``last.pt`` (under torchrun: with as many processes as before)."""
    shown = shlex.quote(display_path(run_dir))
    if world_size > 1:
        return f"pipenv run torchrun <as before: {world_size} processes> -m train --resume {shown}"
    return f"pipenv run train --resume {shown}"


def effective_status(manifest: RunManifest) -> RunStatus:
    """The manifest's status, with ``running`` turned into ``crashed`` when its process (on this host) is gone.

    A run recorded on another host cannot be checked: it stays ``running`` (:func:`status_text` says where).
    """
    if manifest.status is not RunStatus.RUNNING:
        return manifest.status
    alive = process_alive(manifest.host, manifest.pid)
    return RunStatus.CRASHED if alive is False else RunStatus.RUNNING


def status_text(status: RunStatus, manifest: RunManifest | None) -> str:
    """The status as a person reads it: ``running on <host>?`` for a run on another host, which cannot be checked."""
    if status is RunStatus.RUNNING and manifest is not None and manifest.host and manifest.host != host_name():
        return f"running on {manifest.host}?"
    return status.value


def find_run(spec: str, root: Path | None = None) -> RunFolder:
    """A run from a path, a folder name under the runs root, or ``last`` (the newest by start time).

    Raises:
        UserError: When no such run exists.
    """
    root = root or runs_root()
    if spec == "last":
        runs = list_runs(root)
        if not runs:
            raise UserError(f"no training run in {display_path(root)}; train one with `pipenv run train`")
        return runs[-1]
    for candidate in (Path(spec), root / spec):
        if (candidate / "config.yaml").is_file():
            return RunFolder(candidate)
    raise UserError(f"{spec}: not a run folder (expected config.yaml inside); runs live in {display_path(root)}")


def list_runs(root: Path | None = None) -> list[RunFolder]:
    """Every run folder (one with a ``config.yaml``) under the runs root, oldest start first.

    A run whose manifest cannot be read sorts by its folder name alone, first.
    """
    root = root or runs_root()
    if not root.is_dir():
        return []

    def started(run: RunFolder) -> tuple[datetime, str]:
        try:
            return moment(run.read_manifest().started), run.name
        except UserError:
            return moment(""), run.name

    return sorted((RunFolder(p.parent) for p in root.glob("*/config.yaml")), key=started)
