"""Network code, imported by the training and deployment stages only.

Every network is an :class:`ImageClassifier` built from a :class:`NetworkConfig`
by :func:`build_network`. To add one, write a module in this folder whose class is
decorated with ``@register_network("<name>")`` and name it in a YAML file under
``shared_configs/networks/``; nothing else changes (see README, "Bring your own
network").

Besides the networks, this package holds what training and deployment share to
read configs: the network config (:mod:`networks.config`) and the OmegaConf helpers
both typed configs use (:mod:`networks.config_files`). Attribute access is lazy, so
reading a config does not import torch.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {"ImageClassifier": "networks.base", "ArchConfig": "networks.config", "NetworkConfig": "networks.config",
            "load_network_config": "networks.config", "build_network": "networks.registry",
            "list_networks": "networks.registry", "register_network": "networks.registry"}
"""Public name -> the module that defines it."""


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'networks' has no attribute {name!r}")


__all__ = list(_EXPORTS)
