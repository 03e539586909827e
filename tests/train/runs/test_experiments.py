"""Experiment management on the bundled digits, training: runs listed and diffed, sweeps, the LR finder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from common.paths import PROJECT_ROOT
from common.run_folder import RunStatus
from tests.commands import command_line
from train.experiments.runs import format_diff, format_show, format_table, list_records, load_run
from train.config import load_train_config
from train.loop.hooks import Hook
from train.run import RunOptions, train
from train.experiments.lr_find import find_lr
from train.experiments.sweep import run_sweep

QUIET = RunOptions(progress=False, device="cpu", dev=True)
SPACE = """\
params:
  optim.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  augment.rotation: {type: categorical, choices: [0, 10]}
"""


@pytest.mark.slow
def test_runs_lists_shows_and_diffs_real_runs(fast_config):
    a = train(fast_config("optim.lr=0.001"), QUIET)
    b = train(fast_config("optim.lr=0.002", "epochs=3"), QUIET)
    records = list_records()
    assert [r.name for r in records] == [a.run_dir.name, b.run_dir.name]
    table = format_table(records)
    assert a.run_dir.name in table and "finished" in table and "val/loss" in table
    diff = format_diff(load_run(a.run_dir), load_run(b.run_dir))
    assert "epochs: 2 -> 3" in diff and "optim.lr: 0.001 -> 0.002" in diff and "last val/accuracy" in diff
    shown = format_show(load_run(b.run_dir))
    assert "status: finished" in shown and "lr: 0.002" in shown and "best: val/loss" in shown
    result = subprocess.run([*command_line("runs"), "diff", a.run_dir.name, b.run_dir.name],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, env=os.environ, timeout=120)
    assert result.returncode == 0 and "optim.lr: 0.001 -> 0.002" in result.stdout


@pytest.mark.slow
def test_runs_name_the_models_exported_from_them(fast_config, tmp_path):
    from deploy.export import ExportOptions, export

    run = train(fast_config(), QUIET)
    network = load_train_config(run.run_dir / "config.yaml").config.network
    export(ExportOptions(run=str(run.run_dir), name="from-run", network_config=Path(network)))
    (record,) = list_records()
    assert record.models == ["from-run"] and "from-run" in format_table([record])


@pytest.mark.slow
def test_a_hook_of_the_caller_can_stop_a_run(fast_config):
    seen = []

    class StopAfterFirst(Hook):
        name = "stop_after_first"

        def after_epoch(self, run, row):
            seen.append(row["epoch"])
            run.request_stop(RunStatus.PRUNED, "pruned by the test")

    result = train(fast_config("epochs=5"), RunOptions(progress=False, device="cpu", dev=True,
                                                        hooks=(StopAfterFirst(),)))
    assert seen == [1] and result.status == "pruned" and result.epochs_completed == 1
    assert json.loads((result.run_dir / "manifest.json").read_text())["status"] == "pruned"


@pytest.mark.slow
def test_a_sweep_runs_one_training_run_per_trial_and_continues(tiny_network, digits_root, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    overrides = [f"network={tiny_network}", f"data.dataset={digits_root}", "epochs=2", "batch_size=32"]
    result = run_sweep(None, space, trials=3, sampler="random", pruner="none", study="t", dev=True,
                       device="cpu", overrides=overrides)
    assert result.counts == {"COMPLETE": 3}
    runs = sorted(p.name for p in (Path(os.environ["IMAGEPIPE_OUTPUT"]) / "train").iterdir())
    assert [r.rsplit("-", 2)[0] for r in runs] == ["t-t000", "t-t001", "t-t002"]
    summary = json.loads((result.folder / "summary.json").read_text())
    assert summary["best"]["run_dir"] and set(summary["best"]["params"]) == {"optim.lr", "augment.rotation"}
    assert summary["metric"] == "val/loss" and summary["direction"] == "minimize"
    assert (result.folder / "history.png").is_file() and (result.folder / "importance.png").is_file()
    assert len((result.folder / "trials.csv").read_text().splitlines()) == 4
    assert result.storage.startswith("sqlite:///") and Path(result.storage[len("sqlite:///"):]).is_file()
    again = run_sweep(None, space, trials=1, sampler="random", pruner="none", study="t", dev=True, device="cpu",
                      overrides=overrides)
    assert again.counts == {"COMPLETE": 4}  # the study continued


@pytest.mark.slow
def test_poor_trials_are_pruned(tiny_network, digits_root, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    always = optuna.pruners.ThresholdPruner(upper=0.0)  # any val/loss above 0 is pruned at its first report
    result = run_sweep(None, space, trials=2, sampler="random", pruner=always, study="p", dev=True, device="cpu",
                       overrides=[f"network={tiny_network}", f"data.dataset={digits_root}", "epochs=3"])
    assert result.counts == {"PRUNED": 2} and result.best is None
    statuses = {json.loads(p.read_text())["status"] for p in
                (Path(os.environ["IMAGEPIPE_OUTPUT"]) / "train").glob("*/manifest.json")}
    assert statuses == {"pruned"}


@pytest.mark.slow
def test_the_lr_finder_leaves_no_run_behind(fast_config):
    result = find_lr(fast_config("augment.rotation=0"), QUIET, lr_min=1e-5, lr_max=1.0, steps=30)
    output = Path(os.environ["IMAGEPIPE_OUTPUT"])
    assert not (output / "train").exists()
    assert result.folder.parent == output / "lr_find"
    assert {p.name for p in result.folder.iterdir()} == {"lr_find.png", "lr_find.csv", "suggestion.json"}
    assert 5 <= len(result.lrs) <= 30 and result.lrs == sorted(result.lrs)
    assert json.loads((result.folder / "suggestion.json").read_text())["suggested_lr"] == result.suggestion


@pytest.mark.slow
def test_the_command_lines(tiny_network, digits_root, tmp_path):
    env = {**os.environ, "IMAGEPIPE_OUTPUT": str(tmp_path / "out")}
    finder = subprocess.run([sys.executable, "-m", "train", "--find-lr", "--dev", f"network={tiny_network}",
                             f"data.dataset={digits_root}", "--lr-steps", "12", "--no-progress", "--device", "cpu"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert finder.returncode == 0, finder.stderr
    assert "12 steps from 1.0e-06" in finder.stdout and not (tmp_path / "out" / "train").exists()
    inspected = subprocess.run([*command_line("inspect-data"), "--dataset", str(digits_root)],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert inspected.returncode == 0 and "0 problem(s)" in inspected.stdout
    listed = subprocess.run(command_line("runs"), cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env=env, timeout=120)
    assert listed.returncode == 0 and "no runs in" in listed.stdout
    bad = subprocess.run([*command_line("sweep"), "--space", str(tmp_path / "none.yaml")],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "search space file not found" in bad.stderr and "Traceback" not in bad.stderr
