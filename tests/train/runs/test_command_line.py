"""The train command as a process: --print-config shows the resolved config; a config error has no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from common.paths import PROJECT_ROOT


@pytest.mark.slow
def test_print_config_shows_the_resolved_config():
    result = subprocess.run([sys.executable, "-m", "train", "--print-config", "optim.lr=0.25", "--dev"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "lr: 0.25" in result.stdout and "train_split: dev" in result.stdout


@pytest.mark.slow
def test_cli_errors_have_no_traceback():
    result = subprocess.run([sys.executable, "-m", "train", "optim.lrr=1"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: command line: optim.lrr: Key 'lrr' not in 'OptimConfig'. Did you mean: 'lr'?" in result.stderr
