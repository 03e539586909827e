"""The code the evaluation machine runs must not pull in torch (it is not installed there)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from common.paths import PROJECT_ROOT

EVALUATION_SIDE = ["common.contract", "common.lists", "common.images", "common.digits", "common.prepare_data",
                   "common.folder_import", "common.splits", "common.data_profile", "common.cli",
                   "common.inspect_data", "common.model_card", "pipeline", "evaluate", "evaluate.evaluation",
                   "evaluate.compare", "evaluate.__main__"]
"""Must import neither torch nor any stage or network code."""

TORCH_FREE_TOOLS = {"train.browse_runs": (), "common.run_folder": (), "common.train_config": ("omegaconf",)}
"""Tools that read run folders, and what else they need; they may import the train package (lazily), never torch.

The evaluation machine lacks omegaconf (a workstation package), so the config's check is skipped there."""


def imported_after(modules: list[str], watched: tuple[str, ...]) -> list[str]:
    code = (
        "import sys\n"
        f"for name in {modules!r}: __import__(name)\n"
        f"print(','.join(sorted(m for m in {watched!r} if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    return [m for m in result.stdout.strip().split(",") if m]


def test_shared_and_evaluation_code_imports_no_torch_and_no_other_stage():
    assert imported_after(EVALUATION_SIDE, ("torch", "torchvision", "train", "deploy", "networks")) == []


@pytest.mark.parametrize("module", TORCH_FREE_TOOLS)
def test_run_tools_import_no_torch(module):
    for package in TORCH_FREE_TOOLS[module]:
        pytest.importorskip(package, reason=f"{module} needs {package}, which this machine lacks")
    assert imported_after([module], ("torch", "torchvision", "networks")) == []
