"""The network registry: a name in the config -> the class that builds it.

Registration only records a name; nothing is built until :func:`build_network`
asks for one network. The modules of this package are imported on the first
lookup, so dropping a decorated module into ``networks/`` is all it takes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from common.errors import UserError
from common.registry import Registry
from networks.base import ImageClassifier
from networks.config import NetworkConfig

NETWORKS: Registry[type[ImageClassifier]] = Registry("network", "networks", ImageClassifier)
"""Every architecture, by name (``arch.name`` in a network config)."""

N = TypeVar("N", bound=type[ImageClassifier])


def register_network(name: str) -> Callable[[N], N]:
    """Class decorator that registers an :class:`ImageClassifier` under ``name``.

    The class is built as ``cls(config, **config.arch.params)``; its keyword
    arguments are the architecture's parameters.

    Raises:
        TypeError: When the decorated class is not an :class:`ImageClassifier`.
        ValueError: When ``name`` is already registered by another class.
    """
    return NETWORKS.register(name)


def list_networks() -> list[str]:
    """Names of all registered networks, sorted."""
    return NETWORKS.names()


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
    registered(config.arch.name, f"network config {config.name!r}: ")
    return NETWORKS.check_params(config.arch.name, config.arch.params, f"network config {config.name!r}: arch.params: ")


def registered(name: str, where: str = "") -> type[ImageClassifier]:
    """The class registered under ``name``.

    Raises:
        UserError: For an unknown name, listing the registered ones.
    """
    return NETWORKS.get(name, f"{where}arch.name: ")
