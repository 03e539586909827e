"""The README's "Use the model" Python example runs as written, without torch (CI runs it on the evaluation box)."""

from __future__ import annotations

import re
import shutil

import pytest

from common.integrity import record_sha256
from common.paths import PROJECT_ROOT
from evaluate.evaluation import EvaluateOptions, evaluate
from tests.evaluate.conftest import centroid_model


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path, digits_root, monkeypatch, capsys):
    readme = (PROJECT_ROOT / "README.md").read_text()
    code = re.search(r"```python\n(# use the model from Python.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMAGEPIPE_OUTPUT", str(tmp_path / "output"))
    (tmp_path / "model").mkdir()
    record_sha256(centroid_model(tmp_path / "model" / "digits.onnx", digits_root))
    (tmp_path / "new").mkdir()
    for name, source in (("0001.png", "raw/3/0003.png"), ("0002.png", "raw/8/0008.png")):
        shutil.copy(digits_root / source, tmp_path / "new" / name)
    evaluate(EvaluateOptions(model=tmp_path / "model" / "digits.onnx", list=digits_root / "lists" / "test.txt",
                             name="digits-test", bootstrap=0, progress=False))
    capsys.readouterr()
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("new/0001.png 3 [('3', ") and lines[1].startswith("new/0002.png 8 [('8', ")
    assert lines[2] in {"3", "abstain"} and len(lines) == 3
