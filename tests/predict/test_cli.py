"""The command line: ``--help`` at once, the package's names lazy, the Pipfile's script."""

from __future__ import annotations

import subprocess
import sys

from common.paths import PROJECT_ROOT
from tests.commands import command_line, scripts


def test_help_answers_without_importing_the_work():
    code = ("import sys, runpy\nsys.argv = ['predict', '--help']\ntry:\n    runpy.run_module('predict', "
            "run_name='__main__')\nexcept SystemExit:\n    pass\nprint('LOADED', sorted(m for m in ('numpy', "
            "'onnxruntime', 'PIL', 'predict.run') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--operating-point EVALUATION" in result.stdout and "LOADED []" in result.stdout


def test_the_package_exports_lazily():
    names = ("predict", "merge_shards", "ABSTAIN", "Classifier", "Thresholds", "PredictOptions")
    code = ("import sys\nimport predict\nbefore = sorted(m for m in ('numpy', 'onnxruntime', 'PIL', 'predict.run', "
            "'predict.classifier') if m in sys.modules)\n"
            f"found = [getattr(predict, name) for name in {names!r}]\n"
            "print('BEFORE', before, 'CALLABLE', all(callable(f) for f in found if not isinstance(f, str)), "
            "'ABSTAIN', predict.ABSTAIN, 'AFTER', 'predict.run' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # importing the package loads none of the work; asking for a name loads the module that defines it
    assert "BEFORE [] CALLABLE True ABSTAIN abstain AFTER True" in result.stdout, result.stdout


def test_the_pipfile_runs_the_package():
    assert scripts()["predict"][1:] == ["-m", "predict"]
    assert command_line("predict", "merge", "a")[-2:] == ["merge", "a"]
