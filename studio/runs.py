"""What the studio shows of runs: the table, a comparison, a run's live events, its evaluations and models.

Everything is read through the files' owners (:class:`common.run_folder.RunFolder`, the
model card, the evaluation record); nothing here writes. The table keeps each run's row
until its ``manifest.json`` changes (:class:`RunTable`), so 2,000 run folders render from
memory after the first look; a running run's status is checked each time (its lock).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.model_card import read_card_file
from common.paths import model_dir, output_dir
from common.provenance import moment
from common.results import read_evaluation_record
from common.run_folder import RunFolder, RunStatus, runs_root, status_text

LOG_LINES = 40
"""Lines of a run's log the run page shows."""
SORTS = ("started", "name", "status", "dataset", "network", "best", "duration")


@dataclass
class RunRow:
    """One run in the table.

    Attributes:
        name: The run folder's name.
        status: Its effective status.
        status_text: As a person reads it.
        dataset: Its data set.
        network: Its network config.
        best: ``{"metric", "value", "epoch"}`` of its best epoch, when known.
        started: Start time (ISO 8601).
        duration: Seconds from start to end (to now while it runs).
        resumable: Whether it can be continued.
        dev: Whether it trained on the dev split.
        problem: Why its manifest could not be read (then only ``name`` is known).
    """

    name: str
    status: str = ""
    status_text: str = ""
    dataset: str = ""
    network: str = ""
    best: dict[str, Any] | None = None
    started: str = ""
    duration: float | None = None
    resumable: bool = False
    dev: bool = False
    problem: str = ""


@dataclass
class RunTable:
    """The runs table, cached per run by its manifest's modification time and size."""

    cache: dict[str, tuple[tuple[int, int], RunRow]] = field(default_factory=dict)

    def rows(self, root: Path | None = None) -> list[RunRow]:
        """Every run under the runs root, newest first."""
        root = root or runs_root()
        if not root.is_dir():
            return []
        rows = []
        seen = set()
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.is_dir():
                    seen.add(entry.name)
                    rows.append(self._row(Path(entry.path)))
        for gone in set(self.cache) - seen:
            del self.cache[gone]
        return sorted(rows, key=lambda r: (r.started, r.name), reverse=True)

    def _row(self, path: Path) -> RunRow:
        try:
            stat = (path / "manifest.json").stat()
            key = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            return RunRow(path.name, problem="no manifest.json (the run never started, or is not a run)")
        cached = self.cache.get(path.name)
        if cached and cached[0] == key and cached[1].status != RunStatus.RUNNING:
            return cached[1]
        row = run_row(RunFolder(path))
        self.cache[path.name] = (key, row)
        return row


def run_row(folder: RunFolder) -> RunRow:
    """A run's row, from its manifest (and its ``metrics.csv`` while no best is recorded)."""
    try:
        manifest = folder.read_manifest()
        status = folder.status(manifest)
    except UserError as exc:
        return RunRow(folder.name, problem=str(exc))
    end = moment(manifest.ended).timestamp() if manifest.ended else time.time()
    best = (manifest.result or {}).get("best")
    if best is None and status is RunStatus.RUNNING:
        try:
            best = folder.best(manifest)
        except UserError:
            best = None
    return RunRow(folder.name, status.value, status_text(status, manifest), str(manifest.data.get("dataset", "")),
                  str(manifest.network.get("name", "")), best, manifest.started,
                  max(0.0, end - moment(manifest.started).timestamp()), status.resumable, manifest.dev)


def select(rows: list[RunRow], query: str = "", status: str = "", sort: str = "started",
           descending: bool = True) -> list[RunRow]:
    """Rows whose name, data set or network contain ``query`` and whose status is ``status``, sorted."""
    query = query.strip().lower()
    kept = [r for r in rows if (not query or query in f"{r.name} {r.dataset} {r.network}".lower())
            and (not status or r.status == status)]
    sort = sort if sort in SORTS else "started"

    def key(row: RunRow) -> tuple:
        if sort == "best":
            value = (row.best or {}).get("value")
            return (value is None or not math.isfinite(value), value or 0.0)
        if sort == "duration":
            return (row.duration is None, row.duration or 0.0)
        return (getattr(row, sort) or "",)

    return sorted(kept, key=key, reverse=descending)


def find_run_folder(name: str) -> RunFolder:
    """The run folder named ``name`` under the runs root (a plain name, never a path).

    Raises:
        UserError: When there is none.
    """
    folder = runs_root() / name
    if "/" in name or "\\" in name or name in ("", ".", "..") or not (folder / "manifest.json").is_file():
        raise UserError(f"no run named {name!r}")
    return RunFolder(folder)


def flat(values: Any, prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}``."""
    if not isinstance(values, dict):
        return {prefix: values}
    out: dict[str, Any] = {}
    for key, value in values.items():
        out.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_differences(folders: list[RunFolder]) -> list[tuple[str, list[Any]]]:
    """``(key, [value per run])`` for every config key whose values differ between the runs."""
    configs = []
    for folder in folders:
        config = folder.read_run_config()
        configs.append({**flat(config.values), "network_hash": config.network_hash})
    keys = sorted(set().union(*configs))
    return [(key, [c.get(key) for c in configs]) for key in keys if len({repr(c.get(key)) for c in configs}) > 1]


def curves(folder: RunFolder) -> dict[str, Any]:
    """A run's epoch metrics and logged steps, as plain numbers for the page's charts (NaN -> None)."""
    return {"metrics": _plain(folder.read_metrics()), "steps": _plain(folder.read_steps())}


def _plain(rows: list[dict[str, float]]) -> list[dict[str, float | None]]:
    return [{k: (v if isinstance(v, (int, float)) and math.isfinite(v) else None) for k, v in row.items()}
            for row in rows]


@dataclass
class Cursor:
    """How much of a run a page has already been sent (the server-sent events' id: ``<steps>.<metrics>``)."""

    steps: int = 0
    metrics: int = 0

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        """From a ``Last-Event-ID`` (anything else: from the start)."""
        try:
            steps, metrics = (int(part) for part in (text or "").split("."))
            return cls(max(0, steps), max(0, metrics))
        except ValueError:
            return cls()

    def text(self) -> str:
        """As an event id."""
        return f"{self.steps}.{self.metrics}"


def live_update(folder: RunFolder, cursor: Cursor) -> tuple[dict[str, Any], Cursor]:
    """What changed in a run since ``cursor``: new steps and epochs, status, ETA, log tail, figure versions."""
    manifest = folder.read_manifest()
    status = folder.status(manifest)
    steps, metrics = _plain(folder.read_steps()), _plain(folder.read_metrics())
    if len(steps) < cursor.steps or len(metrics) < cursor.metrics:  # a resume cut the files back: start again
        cursor = Cursor()
    update = {"steps": steps[cursor.steps:], "metrics": metrics[cursor.metrics:], "status": status.value,
              "status_text": status_text(status, manifest), "ended": manifest.ended,
              "eta_seconds": eta_seconds(folder, steps) if status is RunStatus.RUNNING else None,
              "figures": figure_versions(folder), "log": log_tail(folder), "reset": cursor == Cursor()}
    return update, Cursor(len(steps), len(metrics))


def eta_seconds(folder: RunFolder, steps: list[dict[str, Any]]) -> float | None:
    """Seconds left: the steps still to train over the last logged speed (None before the first point)."""
    if not steps or not steps[-1].get("samples_per_second") or not steps[-1].get("epoch"):
        return None
    last = steps[-1]
    try:
        config = folder.read_run_config()
    except UserError:
        return None
    epochs, batch = config.get("epochs"), config.get("batch_size")
    if not isinstance(epochs, int) or not isinstance(batch, int) or last["epoch"] <= 0:
        return None
    steps_per_epoch = last["step"] / last["epoch"]
    left = max(0.0, (epochs - last["epoch"]) * steps_per_epoch)
    return left * batch / last["samples_per_second"]


FIGURES = ("samples/train_batch.png", "samples/system.png", "samples/confusion.png", "samples/val_worst.png",
           "curves.png")


def figure_versions(folder: RunFolder) -> dict[str, int]:
    """The run's figures that exist, with their modification times (the page reloads one when it changes)."""
    found = {}
    for name in FIGURES:
        try:
            found[name] = (folder.path / name).stat().st_mtime_ns
        except OSError:
            continue
    for path in sorted(folder.samples_dir.glob("system*.png")):
        found[path.relative_to(folder.path).as_posix()] = path.stat().st_mtime_ns
    return found


def log_tail(folder: RunFolder, lines: int = LOG_LINES) -> list[str]:
    """The last lines of the job's log (``job.log``), else of the run's ``log.txt``."""
    for path in (folder.path / "job.log", folder.log_path):
        if path.is_file():
            return tail_text(path).splitlines()[-lines:]
    return []


def tail_text(path: Path, size: int = 64 * 1024) -> str:
    """The last ``size`` bytes of a text file (a log may be large; only its end is read)."""
    with open(path, "rb") as handle:
        handle.seek(max(0, Path(path).stat().st_size - size))
        return handle.read().decode("utf-8", "replace")


def evaluations_of(run: str) -> list[Path]:
    """Evaluation folders whose model came from run ``run``."""
    found = []
    for record_file in sorted((output_dir() / "eval").glob("*/evaluation.json")):
        try:
            record = read_evaluation_record(record_file.parent)
        except UserError:
            continue
        if record is not None and record.source_run == run:
            found.append(record_file.parent)
    return found


def models_of(run: str) -> list[Path]:
    """Exported models (``model/<name>.onnx``) whose card names run ``run``."""
    found = []
    for card_file in sorted(model_dir().glob("*.json")):
        try:
            card = read_card_file(card_file)
        except UserError:
            continue
        onnx = card_file.with_suffix(".onnx")
        if card.source.run == run and onnx.is_file():
            found.append(onnx)
    return found


def tracker_links(folder: RunFolder) -> list[dict[str, str]]:
    """Where a run's trackers are: TensorBoard's folder, the MLflow server, W&B's offline folder."""
    config = folder.read_run_config()
    trackers = config.get("log.trackers") or []
    links = []
    if "mlflow" in trackers:
        uri = config.get("log.mlflow.tracking_uri") or ""
        links.append({"tracker": "MLflow", "url": uri if uri.startswith(("http://", "https://")) else "",
                      "detail": f"experiment {config.get('log.mlflow.experiment')!r} at {uri or 'output/mlflow'}"})
    if "wandb" in trackers:
        links.append({"tracker": "W&B", "url": "", "detail": f"offline files in {folder.wandb_dir.name}/: "
                      f"wandb sync {folder.wandb_dir}/offline-run-*"})
    return links

