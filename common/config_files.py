"""Reading YAML config files and merging them with OmegaConf; errors name the key path.

Used by every typed config (the shared network config, the training config, sweep
spaces). YAML is parsed safely: tags that would build Python objects are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from common.errors import UserError
from common.paths import display_path


def load_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping.

    Args:
        path: The file.
        what: What the mapping holds, for the error message.

    Raises:
        UserError: When the file is missing or unreadable, not valid YAML, or not a mapping.
    """
    shown = display_path(path)
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except OSError as exc:
        raise UserError(f"{shown}: cannot read ({exc.strerror})") from None
    except Exception as exc:  # yaml's and OmegaConf's parse errors share no base class
        raise UserError(f"{shown}: not a valid YAML mapping ({first_line(exc)})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{shown}: expected a mapping of {what}")
    return raw


def merge(base: Any, update: Any, source: str) -> Any:
    """``OmegaConf.merge(base, update)``, with errors as ``UserError`` naming ``source`` and the key."""
    try:
        return OmegaConf.merge(base, update)
    except OmegaConfBaseException as exc:
        raise UserError(f"{source}: {describe_config_error(exc)}") from None


def describe_config_error(exc: OmegaConfBaseException) -> str:
    """An OmegaConf error as ``<key path>: <first line of its message>``."""
    key = getattr(exc, "full_key", None)
    return f"{key}: {first_line(exc)}" if key else first_line(exc)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
