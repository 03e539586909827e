"""The run folder ``output/train/<run>/``: creation, manifest, log, metrics.

::

    config.yaml        the complete resolved config (network config inline, with its hash)
    manifest.json      git state, package versions, list-file hashes, times, status, result
    git.diff           uncommitted changes when the tree was dirty
    log.txt            what the console showed
    metrics.csv        one row per epoch
    tensorboard/       TensorBoard events (train/<metric>, val/<metric>, lr)
    checkpoints/       last.pt, best.pt, epoch=NNNN-<metric>=<value>.pt (top-k)
"""

from __future__ import annotations

import csv
import io
import json
import logging
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from common.files import atomic_write_text
from common.errors import UserError
from common.paths import PROJECT_ROOT, display_path
from common.runs import runs_root

METRIC_COLUMNS = ("epoch", "step", "lr", "train/loss", "train/accuracy", "val/loss", "val/accuracy",
                  "epoch_seconds", "samples_per_second")
"""Columns of metrics.csv, in order."""

PACKAGES = ("torch", "numpy", "pillow", "omegaconf", "tensorboard", "scikit-learn", "tqdm")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def create_run_dir(name: str, root: Path | None = None) -> Path:
    """Create ``<root>/<name>-<YYYYmmdd-HHMMSS>/``; never reuses an existing folder.

    Raises:
        UserError: When ``name`` has characters other than letters, digits, ``.``, ``_``, ``-``.
    """
    if not _NAME.match(name):
        raise UserError(f"--name {name!r}: use letters, digits, '.', '_' and '-' only")
    root = root or runs_root()
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        candidate = root / (f"{name}-{stamp}" if attempt == 1 else f"{name}-{stamp}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        (candidate / "checkpoints").mkdir()
        return candidate
    raise UserError(f"{display_path(root)}: could not find a free run folder name for {name!r}")


def git_state(run_dir: Path) -> dict[str, Any]:
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
        atomic_write_text(run_dir / "git.diff", header + git("diff", "HEAD"))
        state["diff"] = "git.diff"
    return state


def package_versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages that shape a run."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def now() -> str:
    """The current time, ISO 8601 with time zone."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically, indented."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


class MetricsCsv:
    """``metrics.csv``: one row per epoch, appended as epochs finish.

    Args:
        path: The file.
    """

    def __init__(self, path: Path):
        self.path = path

    def rewrite(self, rows: list[dict[str, Any]]) -> None:
        """Replace the file with exactly these rows (used when a run resumes)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buffer.getvalue())

    def append(self, row: dict[str, Any]) -> None:
        """Add one epoch's row (creating the file with its header when needed)."""
        new = not self.path.exists()
        with open(self.path, "a", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=METRIC_COLUMNS, lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow(row)


def setup_logging(run_dir: Path | None, is_main: bool) -> logging.Logger:
    """The ``train`` logger: console (stdout) and, on the main process, ``log.txt``.

    Other processes under torchrun log warnings and errors only.
    """
    logger = logging.getLogger("train")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    logger.propagate = False
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if run_dir is not None and is_main:
        file_handler = logging.FileHandler(run_dir / "log.txt", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(file_handler)
    return logger


def close_logging(logger: logging.Logger) -> None:
    """Flush and detach the logger's handlers."""
    for handler in list(logger.handlers):
        handler.flush()
        logger.removeHandler(handler)
        handler.close()
