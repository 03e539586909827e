"""``pipenv run runs``: what is in ``output/train/``, and how two runs differ.

::

    pipenv run runs                 one line per run: date, network, key hyperparameters, best metric, status, models
    pipenv run runs show <run>      one run's record: manifest, config, metrics, curves.png, models exported from it
    pipenv run runs diff <A> <B>    config differences and metric differences of two runs

Reads the run folders through :class:`common.run_folder.RunFolder` and the cards in
``model/`` through :func:`common.model_card.read_card_file`, so it needs no torch. A
run whose manifest still says ``running`` is reported ``crashed`` when its process
(recorded with its host) is gone; a run whose files cannot be read is listed as
``unreadable``, with the reason, and the others are listed as usual. A run that a
signal or a crash stopped before its end is listed with the command that continues it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.dicts import differences
from common.errors import UserError
from common.list_versions import version_label
from common.model_card import read_card_file
from common.paths import PROJECT_ROOT, display_path, model_dir
from common.run_folder import (
    MetricSpec,
    RunFolder,
    RunManifest,
    RunStatus,
    list_runs,
    resume_command,
    runs_root,
    status_text,
)

KEY_HYPERPARAMETERS = ("epochs", "batch_size", "optim.name", "optim.lr", "optim.weight_decay", "schedule.name")


def continue_command(record: RunRecord) -> str | None:
    """The command that continues a run that stopped before its end and has a ``last.pt``, else None."""
    resumable = record.status is not None and record.status.resumable
    if not resumable or not (record.folder.checkpoints_dir / "last.pt").is_file():
        return None
    return resume_command(record.folder.path, record.manifest.world_size if record.manifest else 1)


@dataclass
class RunRecord:
    """One training run as read from its folder.

    Attributes:
        folder: The run folder.
        manifest: Its manifest (None when unreadable).
        config: Its config as plain values, with ``network_hash`` (empty when unreadable).
        metrics: ``metrics.csv`` rows.
        status: The effective status (``crashed`` for a dead ``running`` run); None for a broken run.
        best: ``{"metric", "value", "epoch"}`` of the best epoch, or None.
        models: Names of the models in ``model/`` exported from this run.
        problem: Why the run could not be read, or None.
    """

    folder: RunFolder
    manifest: RunManifest | None
    config: dict[str, Any]
    metrics: list[dict[str, float]]
    status: RunStatus | None
    best: dict[str, Any] | None
    models: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def name(self) -> str:
        """The run's folder name."""
        return self.folder.name

    @property
    def status_text(self) -> str:
        """The status as the table shows it (``unreadable`` for a broken run, ``running on <host>?``)."""
        return "unreadable" if self.status is None else status_text(self.status, self.manifest)

    @property
    def headline(self) -> list[str]:
        """The run's headline metrics (declared in its manifest; a run from before declarations: its columns)."""
        specs = self.manifest.metric_specs() if self.manifest else ()
        if specs:
            return [spec.name for spec in specs if spec.headline]
        return [key for key in (self.metrics[0] if self.metrics else {}) if key not in ("epoch", "step")]

    def scores(self) -> list[str]:
        """The headline metrics that are scores (with a direction): what ``runs diff`` compares."""
        specs: tuple[MetricSpec, ...] = self.manifest.metric_specs() if self.manifest else ()
        if specs:
            return [spec.name for spec in specs if spec.headline and spec.direction]
        return [key for key in self.headline if key.startswith(("train/", "val/"))]


def load_run(folder: RunFolder | Path, models: dict[str, list[str]] | None = None) -> RunRecord:
    """Read a run folder.

    Raises:
        UserError: When its config, manifest or metrics cannot be read.
    """
    folder = folder if isinstance(folder, RunFolder) else RunFolder(folder)
    run_config = folder.read_run_config()
    manifest = folder.read_manifest()
    config = {**run_config.values, "network_hash": run_config.network_hash}
    models = models if models is not None else models_by_run()
    return RunRecord(folder, manifest, config, folder.read_metrics(), folder.status(manifest), folder.best(manifest),
                     models.get(folder.name, []))


def list_records(root: Path | None = None) -> list[RunRecord]:
    """Every run under the runs folder, oldest first; an unreadable one is kept, with its problem."""
    models = models_by_run()
    records = []
    for folder in list_runs(root):
        try:
            records.append(load_run(folder, models))
        except UserError as exc:
            records.append(RunRecord(folder, None, {}, [], None, None, models.get(folder.name, []), str(exc)))
    return records


def models_by_run() -> dict[str, list[str]]:
    """Run name -> names of the models whose card says they came from it (unreadable cards are passed over)."""
    out: dict[str, list[str]] = {}
    folder = model_dir()
    for card_path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            card = read_card_file(card_path)
        except UserError:
            continue
        if card.source.run:
            out.setdefault(card.source.run, []).append(card.name)
    return out


def format_table(records: list[RunRecord]) -> str:
    """One line per run, then the problems of unreadable runs."""
    header = ["run", "started", "network", *KEY_HYPERPARAMETERS, "best", "epochs", "status", "models"]
    rows = []
    for record in records:
        best = record.best
        started = record.manifest.started[:16].replace("T", " ") if record.manifest else "-"
        rows.append([
            record.name, started, str(record.config.get("network", "-")),
            *(_format(_get(record.config, key)) for key in KEY_HYPERPARAMETERS),
            f"{best['metric']} {best['value']:.4f} @{best['epoch']}" if best else "-",
            str(len(record.metrics)), record.status_text, ", ".join(record.models) or "-",
        ])
    if not rows:
        return f"no runs in {display_path(runs_root())}"
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines += [f"unreadable: {record.name}: {record.problem}" for record in records if record.problem]
    lines += [f"continue {record.name} ({record.status_text}): {command}" for record in records
              if (command := continue_command(record))]
    return "\n".join(lines)


def format_show(record: RunRecord) -> str:
    """One run's record for the console."""
    import yaml

    manifest = record.manifest
    assert manifest is not None  # load_run raises for unreadable runs
    lines = [f"run: {record.name} ({display_path(record.folder.path)})", f"status: {record.status_text}",
             f"started: {manifest.started}  ended: {manifest.ended}", f"command: {' '.join(manifest.command)}",
             f"git: {manifest.git.get('commit')} dirty={manifest.git.get('dirty')}",
             f"network: {manifest.network.get('name')} hash {manifest.network.get('hash')}",
             f"data: {manifest.data.get('dataset')}", *list_lines(manifest),
             f"models exported from it: {', '.join(record.models) or 'none'}", _curves_line(record.folder)]
    stopped = (manifest.result or {}).get("position")
    if stopped:
        lines.append(f"stopped by {manifest.result.get('signal')} in epoch {stopped['epoch'] + 1} at step "
                     f"{stopped['step_in_epoch']} of {stopped['steps_per_epoch']}")
    command = continue_command(record)
    if command:
        lines.append(f"continue: {command}")
    lines += ["", "config:"]
    config = {k: v for k, v in record.config.items() if k != "network_hash"}
    lines += ["  " + line for line in yaml.safe_dump(config, sort_keys=False).splitlines()]
    lines += ["", "metrics:"]
    if record.metrics:
        columns = ["epoch", *record.headline]
        lines.append("  " + "  ".join(f"{c:>14}" for c in columns))
        lines += ["  " + "  ".join(f"{_format(row.get(c)):>14}" for c in columns) for row in record.metrics]
    if record.best:
        lines.append(f"best: {record.best['metric']} {record.best['value']:.4f} at epoch {record.best['epoch']}")
    return "\n".join(lines)


def list_lines(manifest: RunManifest) -> list[str]:
    """One line per list file the run read: its version in the data set's list history (looked up now, by the
    sha256 the manifest recorded, so a history recorded after the run still names it), samples and path."""
    lines = []
    for name, entry in (manifest.data.get("lists") or {}).items():
        if not isinstance(entry, dict):
            continue
        path = Path(str(entry.get("path", "")))
        root = (path if path.is_absolute() else PROJECT_ROOT / path).parent.parent
        label = version_label(root, path.stem or name, entry.get("sha256"))
        if label.startswith(f"{path.stem} (unversioned") and entry.get("version"):
            label = f"{path.stem} v{entry['version']}"  # recorded at training time; the history is gone since
        lines.append(f"  {name}: {label}, {entry.get('samples', '?')} samples ({entry.get('path')})")
    return lines


def _curves_line(folder: RunFolder) -> str:
    """Where ``curves.png`` (and the figures under ``samples/``) are, or that they are not drawn yet."""
    if not folder.curves_path.is_file():
        return "curves: none yet (drawn after the first epochs)"
    return f"curves: {display_path(folder.curves_path)} (figures in {display_path(folder.samples_dir)}/)"


def format_diff(a: RunRecord, b: RunRecord) -> str:
    """Config and metric differences of two runs (B relative to A)."""
    lines = [f"A: {a.name}", f"B: {b.name}", "", "config differences (A -> B):"]
    changes = differences(a.config, b.config)
    lines += [f"  {key}: {_format(old)} -> {_format(new)}" for key, (old, new) in changes.items()] or ["  none"]
    lines += ["", f"{'metric':<22}{'A':>12}{'B':>12}{'B - A':>12}"]
    for label, value_a, value_b in _metric_pairs(a, b):
        delta = f"{value_b - value_a:+12.4f}" if None not in (value_a, value_b) else f"{'-':>12}"
        lines.append(f"{label:<22}{_format(value_a):>12}{_format(value_b):>12}{delta}")
    lines += [f"{'status':<22}{a.status_text:>12}{b.status_text:>12}",
              f"{'epochs':<22}{len(a.metrics):>12}{len(b.metrics):>12}"]
    return "\n".join(lines)


def _metric_pairs(a: RunRecord, b: RunRecord) -> list[tuple[str, float | None, float | None]]:
    pairs = []
    if a.best and b.best and a.best["metric"] == b.best["metric"]:
        pairs.append((f"best {a.best['metric']}", a.best["value"], b.best["value"]))
    last_a, last_b = (a.metrics[-1] if a.metrics else {}), (b.metrics[-1] if b.metrics else {})
    for key in dict.fromkeys([*a.scores(), *b.scores()]):
        pairs.append((f"last {key}", last_a.get(key), last_b.get(key)))
    return pairs


def _get(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
