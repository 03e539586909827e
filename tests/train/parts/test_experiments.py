"""Experiment management without training: a dead run reads as crashed, search-space errors, the LR suggestion."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from common.errors import UserError
from common.run_folder import RunManifest, RunStatus, effective_status
from train.experiments.lr_find import suggest
from train.experiments.sweep import load_space


def test_a_dead_running_run_is_reported_crashed():
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    dead = RunManifest(run="r", status=RunStatus.RUNNING, started="", pid=int(finished.stdout), host=socket.gethostname())
    assert effective_status(dead) is RunStatus.CRASHED
    assert effective_status(RunManifest(**{**dead.to_dict(), "pid": os.getpid()})) is RunStatus.RUNNING
    stopped = RunManifest(run="r", status=RunStatus.STOPPED_EARLY, started="")
    assert effective_status(stopped) is RunStatus.STOPPED_EARLY


@pytest.mark.parametrize(("text", "message"), [
    ("params: {optim.lr: {type: float, low: 1, high: 0.1}}\n", r"params\.optim\.lr: need low < high"),
    ("params: {optim.lr: {type: normal, low: 0, high: 1}}\n", r"params\.optim\.lr: expected a mapping with type"),
    ("params: {optim.lrr: {type: float, low: 0.1, high: 1}}\n", r"optim\.lrr: Key 'lrr' not in 'OptimConfig'"),
    ("params: {}\n", r"params: expected a mapping"),
    ("metric: val/f1\nparams: {epochs: {type: int, low: 1, high: 2}}\n", r"metric: 'val/f1' is not one of"),
    ("target: x\nparams: {epochs: {type: int, low: 1, high: 2}}\n", r"unknown key\(s\) \['target'\]"),
])
def test_search_space_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_space(path)


def test_the_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = [10 ** (-6 + i * 0.25) for i in range(25)]
    loss = [2.0] * 8 + [2.0 - 0.1 * i for i in range(1, 6)] + [1.0, 0.9, 0.85, 0.84] + [1.5] * 8
    assert suggest(lrs, loss) == pytest.approx(lrs[13])
    assert suggest(lrs[:6], [2.0, 2.1, 2.2, 2.3, 2.4, 2.5]) is None
