"""Reading YAML config files and merging them with OmegaConf; errors name the key path.

Used by every typed config (the shared network config, the training config, sweep
spaces). YAML is parsed safely: tags that would build Python objects are refused.
Command-line overrides (:func:`parse_overrides`) take plain YAML values only: no tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
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


def parse_overrides(items: Sequence[str], source: str = "command line") -> DictConfig:
    """Dotted ``key=value`` overrides as a config (OmegaConf's dotlist); values are plain YAML.

    Args:
        items: E.g. ``["optim.lr=3e-4", "epochs=50"]``.
        source: Where they came from, for messages.

    Raises:
        UserError: Naming the item or its key, for an item that is not ``key=value``,
            a value with a YAML tag (``!!python/object:...``, ``!!binary``: refused,
            never built), or a value that is not valid YAML.
    """
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise UserError(f"{source}: {item!r} is not a key=value override (e.g. optim.lr=3e-4)")
        tag = _first_tag(value)
        if tag:
            raise UserError(f"{source}: {key}: the value {value!r} carries the YAML tag {tag!r}; overrides take "
                            "plain values (numbers, strings, lists, mappings), never tags")
        try:
            OmegaConf.from_dotlist([item])
        except Exception as exc:  # yaml's and OmegaConf's parse errors share no base class
            raise UserError(f"{source}: {key}: the value {value!r} is not valid YAML ({first_line(exc)})") from None
    return OmegaConf.from_dotlist(list(items))


def _first_tag(text: str) -> str | None:
    """The first YAML tag (``!!binary``, ``!local``) in a YAML text, or None (also for a text that is not YAML)."""
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.TagToken):
                handle, suffix = token.value
                return f"{handle or ''}{suffix}"
    except yaml.YAMLError:
        return None
    return None


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
