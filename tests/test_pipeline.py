"""`pipenv run pipeline`: prepares the data, runs the stages in order, stops at the first failure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pipeline import STAGES, Stage, run_pipeline


@pytest.fixture
def fake_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Importable stage packages; each __main__ appends its name to a log file, 'bad' fails."""
    log = tmp_path / "ran.txt"
    for name, code in (("fake_a", 0), ("fake_b", 0), ("fake_bad", 3)):
        package = tmp_path / "stages" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "__main__.py").write_text(
            f"import sys\nopen({str(log)!r}, 'a').write({name!r} + '\\n')\nsys.exit({code})\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path / "stages"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "stages"))
    return log


@pytest.mark.slow
def test_prepares_the_bundled_data_first(tmp_path, monkeypatch, fake_stages):
    monkeypatch.setenv("IMAGEPIPE_DATA", str(tmp_path / "data"))
    result = run_pipeline([Stage("fake_a", "a")])
    assert (tmp_path / "data" / "digits" / "lists" / "train.txt").is_file()
    assert result.completed == ("a",) and result.exit_code == 0


def test_every_stage_has_an_entry_point():
    assert [s.module for s in STAGES if importlib.util.find_spec(f"{s.module}.__main__") is None] == []


def test_runs_stages_in_order(fake_stages):
    result = run_pipeline([Stage("fake_a", "a"), Stage("fake_b", "b")])
    assert fake_stages.read_text().split() == ["fake_a", "fake_b"]
    assert result.completed == ("a", "b") and result.failed is None and result.exit_code == 0


def test_a_failing_stage_stops_the_pipeline_with_its_exit_code(fake_stages):
    result = run_pipeline([Stage("fake_a", "a"), Stage("fake_bad", "bad"), Stage("fake_b", "b")])
    assert fake_stages.read_text().split() == ["fake_a", "fake_bad"]
    assert result.failed == "bad" and result.exit_code == 3 and result.completed == ("a",)
