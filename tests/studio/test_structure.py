"""The studio is one more reader of the stages' files: it imports neither torch nor a stage that needs it (it starts
them as processes), and loading every module of it leaves torch unloaded."""

from __future__ import annotations

import ast
import subprocess
import sys

from common.paths import PROJECT_ROOT

FORBIDDEN = ("torch", "torchvision", "timm", "train", "deploy", "networks", "onnx", "omegaconf")


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_module_of_the_studio_imports_torch_or_a_stage_that_needs_it():
    offending = {}
    for path in sorted((PROJECT_ROOT / "studio").rglob("*.py")):
        bad = sorted(m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN)
        if bad:
            offending[str(path.relative_to(PROJECT_ROOT))] = bad
    assert offending == {}


def test_loading_the_whole_studio_loads_no_torch():
    modules = sorted(".".join(p.relative_to(PROJECT_ROOT).with_suffix("").parts)
                     for p in (PROJECT_ROOT / "studio").rglob("*.py") if p.name != "__main__.py")
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in %r)\nprint(loaded)" % (FORBIDDEN,))
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
