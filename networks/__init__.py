"""Network code, imported by the training and deployment stages only.

Every network is an :class:`ImageClassifier` built from a :class:`NetworkConfig`
by :func:`build_network`. To add one, write a module in this folder whose class is
decorated with ``@register_network("<name>")`` and name it in a YAML file under
``shared_configs/networks/``; nothing else changes (see README, "Bring your own
network").
"""

from networks.base import ImageClassifier
from networks.config import ArchConfig, NetworkConfig, load_network_config
from networks.registry import build_network, list_networks, register_network

__all__ = [
    "ArchConfig",
    "ImageClassifier",
    "NetworkConfig",
    "build_network",
    "list_networks",
    "load_network_config",
    "register_network",
]
