"""The command line: help without heavy imports, user mistakes without tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from common.paths import PROJECT_ROOT


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evaluate", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def test_help_imports_nothing_heavy():
    code = ("import sys; from evaluate.__main__ import build_parser, build_score_parser, build_compare_parser; "
            "build_parser(); build_score_parser(); build_compare_parser(); "
            "print(sorted(m for m in ('numpy', 'onnxruntime', 'matplotlib', 'PIL', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "[]"
    for args in (["--help"], ["score", "--help"], ["compare", "--help"]):
        assert run(*args).returncode == 0


@pytest.mark.slow
def test_evaluate_score_and_compare_from_the_command_line(make_model, digits_root):
    model = make_model()
    listed = str(digits_root / "lists" / "test.txt")
    first = run("--model", str(model), "--list", listed, "--no-progress")
    assert first.returncode == 0, first.stderr
    assert "360 samples: accuracy" in first.stdout and "report: " in first.stdout
    folder = os.path.join(os.environ["IMAGEPIPE_OUTPUT"], "eval", "centroids-test")
    again = run("--model", str(model), "--list", listed, "--no-progress")
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert run("score", os.path.join(folder, "predictions.csv")).returncode == 0
    second = run("--model", str(model), "--list", listed, "--no-progress", "--name", "twin")
    assert second.returncode == 0
    compared = run("compare", folder, "twin", "--bootstrap", "50", "--seed", "3")
    assert compared.returncode == 0 and "fixed 0, broken 0" in compared.stdout
    assert "Verdict: no difference between A and B is shown at 95%." in compared.stdout
    negative = run("score", os.path.join(folder, "predictions.csv"), "--bootstrap", "-1")
    assert negative.returncode == 2 and "--bootstrap and --seed must be at least 0" in negative.stderr
    assert "Traceback" not in negative.stderr
    missing = run("--model", "nope.onnx", "--list", listed)
    assert missing.returncode == 2 and "model not found" in missing.stderr and "Traceback" not in missing.stderr
