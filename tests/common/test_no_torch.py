"""The code the evaluation machine runs must not pull in torch (it is not installed there)."""

from __future__ import annotations

import subprocess
import sys

from common.paths import PROJECT_ROOT

TORCH_FREE = ["common.contract", "common.lists", "common.images", "common.digits", "common.prepare_data", "pipeline",
              "evaluate"]


def test_shared_and_evaluation_code_imports_no_torch():
    code = (
        "import sys\n"
        f"for name in {TORCH_FREE!r}: __import__(name)\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'train', 'deploy', 'networks') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
