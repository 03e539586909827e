"""Finding training runs in ``output/train/`` (used by train, deploy and the run tools)."""

from __future__ import annotations

from pathlib import Path

from common.errors import UserError
from common.files import read_json_object
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
        return max(manifests, key=lambda p: (str(read_json_object(p).get("started", "")), p.parent.name)).parent
    for candidate in (Path(spec), root / spec):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise UserError(f"{spec}: not a run folder (expected config.yaml inside); runs live in {display_path(root)}")

