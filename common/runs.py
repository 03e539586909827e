"""Finding training runs in ``output/train/`` (used by train, deploy and the run tools)."""

from __future__ import annotations

import json
from pathlib import Path

from common.errors import UserError
from common.paths import display_path, output_dir


def runs_root() -> Path:
    """``<output>/train``: where training runs live."""
    return output_dir() / "train"


def find_run(spec: str, root: Path | None = None) -> Path:
    """A run folder from a path, a folder name under the runs root, or ``last`` (the newest).

    The newest run is the one whose ``manifest.json`` records the latest start.

    Raises:
        UserError: When no such run exists.
    """
    root = root or runs_root()
    if spec == "last":
        manifests = list(root.glob("*/manifest.json")) if root.is_dir() else []
        if not manifests:
            raise UserError(f"no training run in {display_path(root)}; train one with `pipenv run train`")
        return max(manifests, key=lambda p: (_started(p), p.parent.name)).parent
    for candidate in (Path(spec), root / spec):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise UserError(f"{spec}: not a run folder (expected config.yaml inside); runs live in {display_path(root)}")


def _started(manifest: Path) -> str:
    try:
        return str(json.loads(manifest.read_text()).get("started", ""))
    except (OSError, ValueError):
        return ""
