"""Run folders written through their owner (``common.run_folder``) without training: for the pages' tests."""

from __future__ import annotations

from pathlib import Path

from common.files import write_csv
from common.run_folder import STEP_COLUMNS, RunFolder, RunManifest, RunStatus, runs_root


def fake_run(name: str, status: RunStatus = RunStatus.FINISHED, dataset: str = "digits", network: str = "digits_cnn",
             lr: float = 1e-3, epochs: int = 3, started: str = "2026-12-01T10:00:00+00:00",
             ended: str | None = "2026-12-01T10:05:00+00:00") -> RunFolder:
    """A run folder named ``<name>-20261201-100000`` with a config, a manifest, metrics and steps."""
    folder = RunFolder(runs_root() / f"{name}-20261201-100000")
    folder.checkpoints_dir.mkdir(parents=True)
    values = {"network": network, "epochs": epochs, "batch_size": 64, "optim": {"name": "adamw", "lr": lr},
              "data": {"dataset": dataset, "train_split": "train", "val_split": "val", "dev_split": "dev",
                       "on_unreadable": "error"},
              "checkpoint": {"monitor": "val/loss", "mode": "min"}, "log": {"trackers": ["tensorboard"]}}
    folder.write_config(values, {"version": 1}, "abc123")
    losses = [2.0 / (epoch + 1) + lr for epoch in range(epochs)]
    result = None
    if status is not RunStatus.RUNNING:
        best = min(range(epochs), key=losses.__getitem__)
        result = {"epochs_completed": epochs, "best": {"metric": "val/loss", "value": losses[best], "epoch": best + 1}}
    folder.write_manifest(RunManifest(folder.name, status, started, ended if status is not RunStatus.RUNNING else None,
                                      ["train", "--name", name], "elsewhere", 1, False, "cpu", 1,
                                      {"name": network, "hash": "abc123"}, {"dataset": dataset}, result=result))
    write_csv(folder.metrics_path, ("epoch", "step", "train/loss", "val/loss", "val/accuracy"),
              [[e + 1, 10 * (e + 1), losses[e] + 0.1, losses[e], 0.5 + 0.1 * e] for e in range(epochs)])
    write_csv(folder.steps_path, STEP_COLUMNS,
              [[s, s / 10, 2.5 - s / 20, lr, 1.0, 500.0] for s in range(1, 10 * epochs + 1, 5)])
    return folder


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    return path
