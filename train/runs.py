"""``pipenv run runs``: what is in ``output/train/``, and how two runs differ.

::

    pipenv run runs                 one line per run: date, network, key hyperparameters, best metric, status, models
    pipenv run runs show <run>      one run's record: manifest, config, metrics, models exported from it
    pipenv run runs diff <A> <B>    config differences and metric differences of two runs

Reads only the files the training stage writes (and the cards in ``model/``), so it
needs no torch. A run whose manifest still says ``running`` is reported ``crashed``
when its process (recorded with its host) is gone.
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.cli import run_main
from common.dicts import differences
from common.errors import UserError
from common.files import read_json_object
from common.paths import display_path, model_dir
from common.runs import find_run, runs_root

KEY_HYPERPARAMETERS = ("epochs", "batch_size", "optim.name", "optim.lr", "optim.weight_decay", "schedule.name")


@dataclass
class RunRecord:
    """One training run as read from its folder.

    Attributes:
        folder: The run folder.
        manifest: ``manifest.json``.
        config: ``config.yaml``.
        metrics: ``metrics.csv`` rows.
        status: The effective status (``crashed`` for a dead ``running`` run).
        models: Names of the models in ``model/`` exported from this run.
    """

    folder: Path
    manifest: dict[str, Any]
    config: dict[str, Any]
    metrics: list[dict[str, str]]
    status: str
    models: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The run's folder name."""
        return self.folder.name

    @property
    def best(self) -> dict[str, Any] | None:
        """``{"metric", "value", "epoch"}`` of the best epoch, if any."""
        return (self.manifest.get("result") or {}).get("best") or self._best_from_metrics()

    def _best_from_metrics(self) -> dict[str, Any] | None:
        checkpoint = self.config.get("checkpoint") or {}
        metric, mode = checkpoint.get("monitor", "val/accuracy"), checkpoint.get("mode", "max")
        rows = [r for r in self.metrics if r.get(metric)]
        if not rows:
            return None
        pick = max if mode == "max" else min
        row = pick(rows, key=lambda r: float(r[metric]))
        return {"metric": metric, "value": float(row[metric]), "epoch": int(row["epoch"])}


def load_run(folder: Path, models: dict[str, list[str]] | None = None) -> RunRecord:
    """Read a run folder.

    Raises:
        UserError: When ``config.yaml`` is missing or unreadable.
    """
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{display_path(folder)}: unreadable config.yaml ({exc})") from None
    manifest = read_json_object(folder / "manifest.json")
    metrics = []
    if (folder / "metrics.csv").is_file():
        with open(folder / "metrics.csv", newline="") as stream:
            metrics = list(csv.DictReader(stream))
    models = models if models is not None else models_by_run()
    return RunRecord(folder, manifest, config, metrics, effective_status(manifest), models.get(folder.name, []))


def list_runs(root: Path | None = None) -> list[RunRecord]:
    """Every run under the runs folder, oldest first."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    models = models_by_run()
    records = [load_run(p.parent, models) for p in root.glob("*/config.yaml")]
    return sorted(records, key=lambda r: (str(r.manifest.get("started", "")), r.name))


def models_by_run() -> dict[str, list[str]]:
    """Run name -> names of the models whose card says they came from it."""
    out: dict[str, list[str]] = {}
    folder = model_dir()
    for card_path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        card = read_json_object(card_path)
        run = (card.get("source") or {}).get("run") if isinstance(card.get("source"), dict) else None
        if run and card.get("schema_version"):
            out.setdefault(run, []).append(card.get("name") or card_path.stem)
    return out


def effective_status(manifest: dict[str, Any]) -> str:
    """The manifest's status, with ``running`` turned into ``crashed`` when its process is gone."""
    status = manifest.get("status", "unknown")
    if status != "running":
        return status
    pid, host = manifest.get("pid"), manifest.get("host")
    if not pid or host != socket.gethostname():
        return "running" if not host or host == socket.gethostname() else f"running on {host}?"
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return "crashed"
    except PermissionError:
        pass
    return "running"


def format_table(records: list[RunRecord]) -> str:
    """One line per run."""
    header = ["run", "started", "network", *KEY_HYPERPARAMETERS, "best", "epochs", "status", "models"]
    rows = []
    for record in records:
        best = record.best
        rows.append([
            record.name, str(record.manifest.get("started", ""))[:16].replace("T", " "),
            str(record.config.get("network", "")), *(_format(_get(record.config, key)) for key in KEY_HYPERPARAMETERS),
            f"{best['metric']} {best['value']:.4f} @{best['epoch']}" if best else "-",
            str(len(record.metrics)), record.status, ", ".join(record.models) or "-",
        ])
    if not rows:
        return f"no runs in {display_path(runs_root())}"
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def format_show(record: RunRecord) -> str:
    """One run's record for the console."""
    manifest = record.manifest
    lines = [f"run: {record.name} ({display_path(record.folder)})", f"status: {record.status}",
             f"started: {manifest.get('started')}  ended: {manifest.get('ended')}",
             f"command: {' '.join(manifest.get('command') or [])}",
             f"git: {(manifest.get('git') or {}).get('commit')} dirty={(manifest.get('git') or {}).get('dirty')}",
             f"network: {(manifest.get('network') or {}).get('name')} hash {(manifest.get('network') or {}).get('hash')}",
             f"data: {(manifest.get('data') or {}).get('dataset')}",
             f"models exported from it: {', '.join(record.models) or 'none'}", "", "config:"]
    config = {k: v for k, v in record.config.items() if k not in ("network_config", "network_hash")}
    lines += ["  " + line for line in yaml.safe_dump(config, sort_keys=False).splitlines()]
    lines += ["", "metrics:"]
    if record.metrics:
        columns = ["epoch", "lr", "train/loss", "train/accuracy", "val/loss", "val/accuracy"]
        lines.append("  " + "  ".join(f"{c:>14}" for c in columns))
        lines += ["  " + "  ".join(f"{_format(row.get(c)):>14}" for c in columns) for row in record.metrics]
    best = record.best
    if best:
        lines.append(f"best: {best['metric']} {best['value']:.4f} at epoch {best['epoch']}")
    return "\n".join(lines)


def format_diff(a: RunRecord, b: RunRecord) -> str:
    """Config and metric differences of two runs (B relative to A)."""
    lines = [f"A: {a.name}", f"B: {b.name}", "", "config differences (A -> B):"]
    changes = differences(a.config, b.config)
    lines += [f"  {key}: {_format(old)} -> {_format(new)}" for key, (old, new) in changes.items()] or ["  none"]
    lines += ["", f"{'metric':<22}{'A':>12}{'B':>12}{'B - A':>12}"]
    for label, value_a, value_b in _metric_pairs(a, b):
        delta = f"{value_b - value_a:+12.4f}" if None not in (value_a, value_b) else f"{'-':>12}"
        lines.append(f"{label:<22}{_format(value_a):>12}{_format(value_b):>12}{delta}")
    lines += [f"{'status':<22}{a.status:>12}{b.status:>12}", f"{'epochs':<22}{len(a.metrics):>12}{len(b.metrics):>12}"]
    return "\n".join(lines)


def _metric_pairs(a: RunRecord, b: RunRecord) -> list[tuple[str, float | None, float | None]]:
    pairs = []
    best_a, best_b = a.best, b.best
    if best_a and best_b and best_a["metric"] == best_b["metric"]:
        pairs.append((f"best {best_a['metric']}", best_a["value"], best_b["value"]))
    last_a, last_b = (a.metrics[-1] if a.metrics else {}), (b.metrics[-1] if b.metrics else {})
    for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy"):
        pairs.append((f"last {key}", _float(last_a.get(key)), _float(last_b.get(key))))
    return pairs


def main(argv: Sequence[str]) -> int:
    """``runs [list] | show RUN | diff A B``."""
    parser = argparse.ArgumentParser(prog="pipenv run runs", description="List, show and compare training runs.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", help="one line per run (the default)")
    show = commands.add_parser("show", help="one run's record")
    show.add_argument("run", help="run folder, its name, or 'last'")
    diff = commands.add_parser("diff", help="config and metric differences of two runs")
    diff.add_argument("a")
    diff.add_argument("b")
    args = parser.parse_args(argv)
    if args.command == "show":
        print(format_show(load_run(find_run(args.run))))
    elif args.command == "diff":
        print(format_diff(load_run(find_run(args.a)), load_run(find_run(args.b))))
    else:
        print(format_table(list_runs()))
    return 0


def _get(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    try:
        return f"{float(value):.4g}" if isinstance(value, str) and "." in value else str(value)
    except ValueError:
        return str(value)


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None



if __name__ == "__main__":
    sys.exit(run_main(main))
