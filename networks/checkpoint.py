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
from common.integrity import verify_sha256
from common.paths import display_path
from networks.config import NetworkConfig

CHECKPOINT_FORMAT = 3
"""Version of the checkpoint layout written by the training stage (2 added ``position``: where inside an
epoch a ``last.pt`` was written, or None at an epoch's end; 3 keeps the state of every hook of the run under
``hooks``, by hook name, where 1 and 2 had ``checkpoint_keeper`` and ``early_stopping``)."""

READABLE_FORMATS = (1, 2, 3)
"""Versions :func:`read_checkpoint` accepts; a version 1 checkpoint was written at the end of an epoch."""

LEGACY_HOOK_KEYS = {"checkpoint_keeper": "checkpoints", "early_stopping": "early_stopping"}
"""Keys of formats 1 and 2 that hold a hook's state -> the name the hook's state has under ``hooks``."""

REQUIRED_KEYS = ("format_version", "network_config", "network_hash", "class_names", "model")
"""Keys every training checkpoint holds (resume needs more; see train.resilience.checkpoints)."""

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
    if data["format_version"] not in READABLE_FORMATS:
        raise UserError(
            f"{shown}: checkpoint format {data['format_version']!r}; this code reads formats {list(READABLE_FORMATS)}"
        )
    data.setdefault("position", None)  # format 1: always the end of an epoch
    if data["format_version"] < 3:  # the hooks' states under their own keys
        data["hooks"] = {name: data.pop(key) for key, name in LEGACY_HOOK_KEYS.items() if key in data}
    return data


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The network weights in a weights file: a training checkpoint, a ``state_dict``
    saved with ``torch.save`` (also wrapped as ``{"state_dict": ...}`` or
    ``{"model": ...}``, as timm and others save them), or a ``.safetensors`` file.

    Raises:
        UserError: When the file is missing, unreadable, or holds no mapping of names to tensors.
    """
    shown = display_path(path)
    if Path(path).suffix == ".safetensors":
        data = _safetensors_load(path)
    else:
        data = _torch_load(path)
        for key in ("model", "state_dict"):
            if isinstance(data, dict) and isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not data or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()
    ):
        raise UserError(
            f"{shown}: holds neither a training checkpoint nor a state_dict (a mapping of names to tensors)"
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


LOAD_MODES = ("strict", "partial", "pretrained")
"""How :func:`load_weights` treats weights that do not match the network exactly."""


@dataclass
class LoadReport:
    """What :func:`load_weights` did.

    Attributes:
        loaded: Keys loaded into the network.
        missing: Network keys the weights did not provide (they keep their initial values).
        unexpected: Weight keys the network does not have.
        reshaped: ``key: weights shape vs network shape`` for keys whose shapes differ;
            the network keeps its own initial tensor (e.g. a new classifier head for
            another class count).
        adapted: ``key: weights shape -> network shape`` for input convolutions
            converted between 3 and 1 channels (``pretrained`` mode).
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    reshaped: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        """The keys of each kind, JSON-ready (as stored in a run's manifest)."""
        return asdict(self)

    def summary(self) -> str:
        """One line: counts, and up to five keys of each kind."""
        parts = [f"loaded {len(self.loaded)}"]
        for name in ("missing", "unexpected", "reshaped", "adapted"):
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
            the keys that match, report the rest. ``pretrained``: a foreign weights
            file (e.g. ImageNet weights of a timm model): its keys are first named as
            the network names them (:meth:`networks.base.ImageClassifier.adapt_pretrained`),
            an input convolution is converted between 3 and 1 channels, and the rest
            is as ``partial`` (a classifier head of another class count is left at its
            initial values and reported as reshaped).
        source: Where the weights came from, for messages.

    Returns:
        The report of loaded, missing, unexpected, reshaped and adapted keys.

    Raises:
        UserError: In strict mode on any difference; in every mode when nothing matches.
    """
    weights = {_strip_prefixes(k): v for k, v in state_dict.items()}
    if mode == "pretrained" and hasattr(network, "adapt_pretrained"):
        weights = network.adapt_pretrained(weights)
    own = network.state_dict()
    report = LoadReport(missing=sorted(set(own) - set(weights)), unexpected=sorted(set(weights) - set(own)))
    usable = {}
    for key in sorted(set(own) & set(weights)):
        tensor, wanted = weights[key], tuple(own[key].shape)
        if tuple(tensor.shape) != wanted and mode == "pretrained":
            converted = _adapt_input_channels(tensor, wanted)
            if converted is not None:
                report.adapted.append(f"{key}: {tuple(tensor.shape)} -> {wanted}")
                tensor = converted
        if tuple(tensor.shape) != wanted:
            report.reshaped.append(f"{key}: {tuple(tensor.shape)} vs {wanted}")
        else:
            usable[key] = tensor
    report.loaded = sorted(usable)
    if mode == "strict" and (report.missing or report.unexpected or report.reshaped):
        raise UserError(
            f"{source}: the weights do not match the network ({report.summary()}); "
            "use init.mode=partial to load only the matching keys"
        )
    if not usable:
        raise UserError(f"{source}: no key matches the network by name and shape ({report.summary()})")
    network.load_state_dict(usable, strict=False)
    return report


def _adapt_input_channels(weight: torch.Tensor, wanted: tuple[int, ...]) -> torch.Tensor | None:
    """A convolution's weight ``(O, 3, kh, kw)`` summed to ``(O, 1, kh, kw)``, or ``(O, 1, ...)``
    spread to ``(O, 3, ...)``; None when the shapes differ otherwise."""
    if weight.ndim != 4 or len(wanted) != 4 or weight.shape[0] != wanted[0] or tuple(weight.shape[2:]) != wanted[2:]:
        return None
    if weight.shape[1] == 3 and wanted[1] == 1:
        return weight.sum(dim=1, keepdim=True)  # (O, 3, kh, kw) -> (O, 1, kh, kw)
    if weight.shape[1] == 1 and wanted[1] == 3:
        return weight.repeat(1, 3, 1, 1) / 3.0  # (O, 1, kh, kw) -> (O, 3, kh, kw)
    return None


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
    if verify_sha256(path) is None:  # no sidecar (a file from elsewhere, or an older run): the zip's CRCs
        _check_crcs(path)
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


def _check_crcs(path: Path) -> None:
    """Refuse a ``torch.save`` file whose zip entries do not match their CRC-32 (torch.load does not check)."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
        raise UserError(f"{display_path(path)}: not a readable checkpoint, truncated or corrupt ({exc})") from None
    if damaged is not None:
        raise UserError(f"{display_path(path)}: damaged: its entry {damaged!r} does not match its CRC-32; use another "
                        "copy or another checkpoint")


def _safetensors_load(path: Path) -> Any:
    shown = display_path(path)
    if not Path(path).is_file():
        raise UserError(f"{shown}: weights file not found")
    verify_sha256(path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{shown}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
