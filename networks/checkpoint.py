"""Reading checkpoints and loading weights: one loader, loud about what it loaded.

A checkpoint written by the training stage is a plain dict that loads with
``torch.load(weights_only=True)`` (no pickled code). Its keys are documented in
docs/contracts.md; the ones every reader relies on are checked here.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.errors import UserError
from common.paths import display_path
from networks.config import NetworkConfig

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint layout written by the training stage."""

REQUIRED_KEYS = ("format_version", "network_config", "network_hash", "class_names", "model")
"""Keys every training checkpoint holds (resume needs more; see train.checkpoints)."""

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a training checkpoint safely and check its layout.

    Args:
        path: The ``.pt`` file.

    Returns:
        The checkpoint dict.

    Raises:
        UserError: When the file is missing, corrupt, not loadable with
            ``weights_only=True``, not a training checkpoint, or of another format version.
    """
    data = _torch_load(path)
    shown = display_path(path)
    if not isinstance(data, dict) or not all(key in data for key in REQUIRED_KEYS):
        have = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise UserError(
            f"{shown}: not a checkpoint written by this project's training stage "
            f"(expected keys {list(REQUIRED_KEYS)}, found {have})"
        )
    if data["format_version"] != CHECKPOINT_FORMAT:
        raise UserError(
            f"{shown}: checkpoint format {data['format_version']!r}; this code reads format {CHECKPOINT_FORMAT}"
        )
    return data


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The network weights in a training checkpoint or a plain ``state_dict`` file.

    Raises:
        UserError: When the file holds neither.
    """
    data = _torch_load(path)
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not data or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()
    ):
        raise UserError(
            f"{display_path(path)}: holds neither a training checkpoint nor a state_dict (a mapping of names to tensors)"
        )
    return data


def checkpoint_network_config(checkpoint: dict[str, Any], source: str) -> NetworkConfig:
    """The network config stored in a checkpoint, checked against its stored hash.

    Raises:
        UserError: When the stored config is invalid or does not match its hash.
    """
    config = NetworkConfig.from_dict(checkpoint["network_config"], source=f"{source}: network_config")
    if config.hash != checkpoint["network_hash"]:
        raise UserError(
            f"{source}: the stored network config hashes to {config.hash[:12]}, not to the stored "
            f"network_hash {str(checkpoint['network_hash'])[:12]}; the checkpoint was altered or corrupted"
        )
    return config


@dataclass
class LoadReport:
    """What :func:`load_weights` did.

    Attributes:
        loaded: Keys loaded into the network.
        missing: Network keys the weights did not provide.
        unexpected: Weight keys the network does not have.
        mismatched: ``key: weights shape vs network shape`` for keys whose shapes differ.
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        """The keys of each kind, JSON-ready (as stored in a run's manifest)."""
        return asdict(self)

    def summary(self) -> str:
        """One line: counts, and up to five keys of each kind."""
        parts = [f"loaded {len(self.loaded)}"]
        for name in ("missing", "unexpected", "mismatched"):
            keys = getattr(self, name)
            if keys:
                shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
                parts.append(f"{name} {len(keys)} ({shown})")
        return "; ".join(parts)


def load_weights(network: nn.Module, state_dict: dict[str, torch.Tensor], mode: str = "strict",
                 source: str = "weights") -> LoadReport:
    """Load weights into a network and report exactly what matched.

    ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes are removed.

    Args:
        network: The (unwrapped) network.
        state_dict: The weights.
        mode: ``strict``: every key must match in name and shape. ``partial``: load
            the keys that match, report the rest.
        source: Where the weights came from, for messages.

    Returns:
        The report of loaded, missing, unexpected and mismatched keys.

    Raises:
        UserError: In strict mode on any difference; in partial mode when nothing matches.
    """
    weights = {_strip_prefixes(k): v for k, v in state_dict.items()}
    own = network.state_dict()
    report = LoadReport(
        missing=sorted(set(own) - set(weights)),
        unexpected=sorted(set(weights) - set(own)),
    )
    usable = {}
    for key in sorted(set(own) & set(weights)):
        if tuple(own[key].shape) != tuple(weights[key].shape):
            report.mismatched.append(f"{key}: {tuple(weights[key].shape)} vs {tuple(own[key].shape)}")
        else:
            usable[key] = weights[key]
    report.loaded = sorted(usable)
    if mode == "strict" and (report.missing or report.unexpected or report.mismatched):
        raise UserError(
            f"{source}: the weights do not match the network ({report.summary()}); "
            "use init.mode=partial to load only the matching keys"
        )
    if not usable:
        raise UserError(f"{source}: no key matches the network by name and shape ({report.summary()})")
    network.load_state_dict(usable, strict=False)
    return report


def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def _torch_load(path: Path) -> Any:
    shown = display_path(path)
    if not Path(path).is_file():
        raise UserError(f"{shown}: checkpoint not found")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{shown}: not a readable checkpoint (not in torch.save's format, or truncated or corrupt)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "WeightsUnpickler error" in line), "")
        raise UserError(
            f"{shown}: refused by torch.load(weights_only=True): it holds objects other than tensors and plain "
            f"containers{f' ({detail})' if detail else ''}; this project never loads such files"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{shown}: not a readable checkpoint, truncated or corrupt ({first})") from None
