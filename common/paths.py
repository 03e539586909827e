"""Where data sets, models and outputs live.

Each folder defaults to the one in the repository and can be moved (to a big disk,
say) with an environment variable, or by making the folder a symbolic link:

=====================  ====================  ===========================
folder                 variable              holds
=====================  ====================  ===========================
``data/``              ``IMAGEPIPE_DATA``    data sets (images + lists)
``model/``             ``IMAGEPIPE_MODEL``   pretrained and deployable models
``output/``            ``IMAGEPIPE_OUTPUT``  training runs and reports
=====================  ====================  ===========================

The variables are read when a function is called, never at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The repository root (the folder holding the Pipfile)."""


def _folder(variable: str, default: str) -> Path:
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser() if value else PROJECT_ROOT / default


def data_dir() -> Path:
    """The folder holding data sets, ``$IMAGEPIPE_DATA`` or ``<repo>/data``."""
    return _folder("IMAGEPIPE_DATA", "data")


def model_dir() -> Path:
    """The folder holding models, ``$IMAGEPIPE_MODEL`` or ``<repo>/model``."""
    return _folder("IMAGEPIPE_MODEL", "model")


def output_dir() -> Path:
    """The folder holding runs and reports, ``$IMAGEPIPE_OUTPUT`` or ``<repo>/output``."""
    return _folder("IMAGEPIPE_OUTPUT", "output")


def shared_configs_dir() -> Path:
    """The folder of configs shared by training and deployment."""
    return PROJECT_ROOT / "shared_configs"


def display_path(path: Path) -> str:
    """A path as a user should read it: relative to the repository when inside it."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
