"""The network registry: a name in the config -> the class that builds it.

Registration only records a name; nothing is built until :func:`build_network`
asks for one network. The modules of this package are imported on the first
lookup, so dropping a decorated module into ``networks/`` is all it takes.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import TypeVar

from common.errors import UserError
from networks.base import ImageClassifier
from networks.config import NetworkConfig

_REGISTRY: dict[str, type[ImageClassifier]] = {}
_discovered = False

N = TypeVar("N", bound=type[ImageClassifier])


def register_network(name: str) -> Callable[[N], N]:
    """Class decorator that registers an :class:`ImageClassifier` under ``name``.

    The class is built as ``cls(config, **config.arch.params)``; its keyword
    arguments are the architecture's parameters.

    Raises:
        ValueError: When ``name`` is already registered by another class.
    """

    def decorator(cls: N) -> N:
        if not (isinstance(cls, type) and issubclass(cls, ImageClassifier)):
            raise TypeError(f"@register_network({name!r}) must decorate an ImageClassifier subclass")
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"network name {name!r} is registered twice: by {existing.__module__}.{existing.__qualname__} "
                f"and by {cls.__module__}.{cls.__qualname__}; rename one"
            )
        _REGISTRY[name] = cls
        return cls

    return decorator


def list_networks() -> list[str]:
    """Names of all registered networks, sorted."""
    _discover()
    return sorted(_REGISTRY)


def build_network(config: NetworkConfig) -> ImageClassifier:
    """Build the network a config describes, with freshly initialised weights.

    Args:
        config: The network config.

    Returns:
        The network, in training mode, on the CPU.

    Raises:
        UserError: For an unknown architecture name (listing the known ones) or
            parameters the architecture does not take.
    """
    cls = check_network(config)
    try:
        return cls(config, **config.arch.params)
    except (TypeError, ValueError) as exc:
        raise UserError(f"network config {config.name!r}: arch.params: {exc}") from exc


def check_network(config: NetworkConfig) -> type[ImageClassifier]:
    """Check that a config names a registered network and parameters it takes, without building it.

    Returns:
        The registered class.

    Raises:
        UserError: For an unknown architecture name (listing the known ones) or
            parameters the architecture does not take (or lacks).
    """
    cls = registered(config.arch.name, f"network config {config.name!r}: ")
    _check_params(cls, config)
    return cls


def registered(name: str, where: str = "") -> type[ImageClassifier]:
    """The class registered under ``name``.

    Raises:
        UserError: For an unknown name, listing the registered ones.
    """
    _discover()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise UserError(f"{where}arch.name: unknown network {name!r}; registered: {sorted(_REGISTRY)}")
    return cls


def _check_params(cls: type[ImageClassifier], config: NetworkConfig) -> None:
    parameters = list(inspect.signature(cls.__init__).parameters.values())[2:]  # skip self, config
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    unknown = sorted(set(config.arch.params) - accepted)
    required = {p.name for p in parameters if p.default is inspect.Parameter.empty and p.kind is not p.VAR_POSITIONAL}
    missing = sorted(required - set(config.arch.params))
    problems = []
    if unknown:
        problems.append(f"unknown parameter(s) {unknown}")
    if missing:
        problems.append(f"missing parameter(s) {missing}")
    if problems:
        raise UserError(
            f"network config {config.name!r}: arch.params: {' and '.join(problems)} for network "
            f"{config.arch.name!r}; it takes {sorted(accepted)}"
        )


def _discover() -> None:
    """Import every public module of this package once, so their decorators run."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module("networks")
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"networks.{module.name}")
        except ImportError as exc:
            raise UserError(f"networks/{module.name}.py cannot be imported: {exc}") from exc
    _discovered = True
