"""The shared network config: one YAML file per network, one frozen dataclass.

``shared_configs/networks/<name>.yaml`` describes a network completely: which
registered architecture with which parameters, how many classes, and the input
contract. Training and deployment both build the network from it; its content hash
is recorded in every run, checkpoint and exported model.

Example (``shared_configs/networks/digits_cnn.yaml``)::

    version: 1
    arch:
      name: small_cnn            # a name registered with @register_network
      params: {channels: [32, 64, 128], dropout: 0.2}
    num_classes: 10
    input:
      color_mode: L              # L (grayscale) or RGB
      height: 16
      width: 16
      interpolation: bilinear
      mean: [0.3]                # 0..1 scale, one value per channel
      std: [0.4]

The ``name`` is the file's stem and need not be written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from common.contract import ContractError, InputContract
from common.errors import UserError
from common.files import canonical_hash
from common.limits import MAX_CLASSES
from common.paths import display_path, shared_configs_dir
from networks.config_files import describe_config_error, load_yaml_mapping

NETWORK_CONFIG_VERSION = 1
"""The schema version this code reads and writes."""


@dataclass(frozen=True)
class ArchConfig:
    """Which architecture to build.

    Attributes:
        name: Name registered with :func:`networks.register_network`.
        params: Keyword arguments of that architecture (see its docstring).
    """

    name: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkConfig:
    """A network, completely described: architecture, classes and input contract.

    Attributes:
        name: The config's name (the YAML file's stem).
        version: Schema version of the config (``NETWORK_CONFIG_VERSION``).
        arch: Architecture name and parameters.
        num_classes: Number of output classes.
        input: The input contract (colour mode, size, interpolation, mean, std).
        pretrained: A weights file (in ``model/``, or a path) that training starts
            from, e.g. ImageNet weights of a timm backbone; None for a random start.
            Building the network never reads it, so deployment does not need it.
    """

    name: str = MISSING
    version: int = NETWORK_CONFIG_VERSION
    arch: ArchConfig = field(default_factory=ArchConfig)
    num_classes: int = MISSING
    input: InputContract = MISSING
    pretrained: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-ready values (what checkpoints and models store).

        ``pretrained`` is left out when unset, so configs without it keep their hash.
        """
        out = asdict(self)
        out["input"] = self.input.to_dict()
        if out["pretrained"] is None:
            del out["pretrained"]
        return json.loads(json.dumps(out))

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of :meth:`to_dict`: equal configs, equal hash.

        Formatting, comments and key order in the YAML do not change it; any value does.
        """
        return canonical_hash(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> NetworkConfig:
        """Validate a mapping (from YAML, a checkpoint or a model card) into a config.

        Args:
            data: The mapping.
            source: Where it came from, named in every error message.

        Raises:
            UserError: Naming the key path for an unknown key (with the closest known
                key), a wrong type, a missing value, or an unsupported version.
        """
        if not isinstance(data, dict):
            raise UserError(f"{source}: expected a mapping of network config keys, got {type(data).__name__}")
        version = data.get("version", NETWORK_CONFIG_VERSION)
        if version != NETWORK_CONFIG_VERSION:
            raise UserError(
                f"{source}: version: this code reads network config version {NETWORK_CONFIG_VERSION}, "
                f"got {version!r}"
            )
        try:
            merged = OmegaConf.merge(OmegaConf.structured(cls), data)
            config = OmegaConf.to_object(merged)
        except OmegaConfBaseException as exc:
            raise UserError(f"{source}: {describe_config_error(exc)}") from None
        except ContractError as exc:
            raise UserError(f"{source}: " + "; ".join(f"input.{p}" for p in exc.problems)) from None
        if not 1 <= config.num_classes <= MAX_CLASSES:
            raise UserError(f"{source}: num_classes: must be at least 1 and at most {MAX_CLASSES} "
                            f"(common.limits.MAX_CLASSES), got {config.num_classes}")
        return config


def network_config_path(name_or_path: str | Path) -> Path:
    """Find a network config by name (``shared_configs/networks/<name>.yaml``) or path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        return candidate
    return shared_configs_dir() / "networks" / f"{name_or_path}.yaml"


def load_network_config(name_or_path: str | Path) -> NetworkConfig:
    """Load and validate a shared network config.

    Args:
        name_or_path: A config name such as ``"digits_cnn"``, or a path to a YAML file.

    Returns:
        The frozen config, its ``name`` set to the file's stem.

    Raises:
        UserError: When the file is missing, is not valid YAML, or fails validation.
    """
    path = network_config_path(name_or_path)
    shown = display_path(path)
    if not path.is_file():
        known = sorted(p.stem for p in (shared_configs_dir() / "networks").glob("*.yaml"))
        raise UserError(f"{shown}: network config not found; known configs: {known}")
    raw = load_yaml_mapping(path, "network config keys")
    if raw.setdefault("name", path.stem) != path.stem:
        raise UserError(
            f"{shown}: name: {raw['name']!r} differs from the file name {path.stem!r}; "
            "remove the key (the file name is the config's name)"
        )
    return NetworkConfig.from_dict(raw, source=shown)
