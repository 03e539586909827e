"""``common/`` holds only torch-free shared code, and the evaluation machine's code imports no torch.

Two checks of one rule. The first reads the source: no module of ``common`` imports
torch, OmegaConf, a stage package or ``networks`` anywhere, not even inside a
function, where an import check at load time would not see it. The second imports
the modules in a fresh interpreter and looks at what was loaded; CI runs it in the
evaluation-only environment (no torch, no OmegaConf), where a forbidden import
would also fail outright.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from common.paths import PROJECT_ROOT

FORBIDDEN_IN_COMMON = ("torch", "torchvision", "timm", "omegaconf", "optuna", "tensorboard", "onnx", "wandb",
                       "mlflow", "train", "deploy", "evaluate", "networks", "datatools", "pipeline", "bench", "predict")
"""Top-level packages no module of ``common`` may import (``onnxruntime`` is allowed: the evaluation box has it)."""

TORCH_FREE = ("torch", "torchvision", "timm", "omegaconf", "train", "deploy", "networks")
"""What the evaluation machine's code must not load."""

TORCH_FREE_TOOLS = {"train.experiments.runs": (), "common.run_folder": (), "train.config": ("omegaconf",)}
"""Tools that read run folders or configs, and what else they need; they may import the train package and the
config helpers of ``networks`` (lazily), never torch."""


def common_modules() -> list[str]:
    return sorted(f"common.{path.stem}" for path in (PROJECT_ROOT / "common").glob("*.py") if path.stem != "__init__")


FORBIDDEN_IN_PREDICT = ("torch", "torchvision", "timm", "omegaconf", "onnx", "train", "deploy", "evaluate", "networks",
                        "datatools", "pipeline", "bench")
"""Top-level packages no module of ``predict`` may import: it uses ``common`` only (and runs on the evaluation box)."""


def evaluation_side() -> list[str]:
    """Every module the evaluation machine runs: common, evaluate, predict, the data tools (not the network writer),
    the pipeline's entry."""
    modules = common_modules() + ["pipeline"]
    for package in ("evaluate", "predict", "datatools"):
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def imports_of(path) -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every import statement in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def imported_after(modules: list[str], watched: tuple[str, ...]) -> list[str]:
    code = (
        "import sys\n"
        f"for name in {modules!r}: __import__(name)\n"
        f"print(','.join(sorted(m for m in {watched!r} if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [m for m in result.stdout.strip().split(",") if m]


def test_no_module_of_common_imports_torch_omegaconf_a_stage_or_networks_anywhere():
    offending = [f"common/{path.name}:{line}: {package}" for path in sorted((PROJECT_ROOT / "common").glob("*.py"))
                 for line, package in imports_of(path) if package in FORBIDDEN_IN_COMMON]
    assert offending == []


def test_predict_imports_common_only_anywhere():
    offending = [f"predict/{path.name}:{line}: {package}" for path in sorted((PROJECT_ROOT / "predict").glob("*.py"))
                 for line, package in imports_of(path) if package in FORBIDDEN_IN_PREDICT]
    assert offending == []


def test_the_source_check_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef f():\n    import torch\n    from train.config import X\n")
    assert imports_of(sample) == [(1, "os"), (4, "torch"), (5, "train")]


def test_the_evaluation_machine_code_imports_no_torch_and_no_other_stage():
    assert imported_after(evaluation_side(), TORCH_FREE) == []


@pytest.mark.parametrize("module", TORCH_FREE_TOOLS)
def test_run_tools_import_no_torch(module):
    for package in TORCH_FREE_TOOLS[module]:
        pytest.importorskip(package, reason=f"{module} needs {package}, which this machine lacks")
    assert imported_after([module], ("torch", "torchvision", "networks.base")) == []
