"""Entry points: user mistakes end with a one-line error and exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from common.paths import PROJECT_ROOT
from tests.commands import command_line


def run_command(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        command_line(name, *args),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.mark.slow
def test_prepare_data_writes_then_reports_up_to_date(tmp_path: Path):
    first = run_command("prepare-data", "--out", str(tmp_path / "digits"))
    assert first.returncode == 0, first.stderr
    assert "(train 1257, val 180, test 360, dev 100)" in first.stdout
    again = run_command("prepare-data", "--out", str(tmp_path / "digits"))
    assert again.returncode == 0 and "already up to date" in again.stdout


@pytest.mark.slow
def test_prepare_data_refuses_to_overwrite_without_a_traceback(tmp_path: Path):
    target = tmp_path / "digits"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = run_command("prepare-data", "--out", str(target))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "--force" in result.stderr and (target / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_prepare_data_default_folder_follows_the_data_setting(tmp_path: Path):
    result = run_command("prepare-data", env={"IMAGEPIPE_DATA": str(tmp_path / "big-disk")})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "big-disk" / "digits" / "classes.txt").is_file()


def test_the_documented_python_apis_import():
    import deploy
    import train
    from deploy.export import ExportOptions, export

    assert deploy.ExportOptions is ExportOptions and callable(export)
    assert callable(train.train) and callable(train.resume) and train.RunOptions and train.Trainer
