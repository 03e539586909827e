"""What a run's own config allows when it is repeated or continued: the pinned network, the changes allowed.

A run's ``config.yaml`` pins the network config it trained (inline, with its hash), so
repeating it with a shared network config that changed since is refused
(:func:`pinned_network_config`); continuing it (``--resume``, ``--auto-resume``) with a
changed training config is refused unless ``--allow-change`` names the keys
(:func:`check_changes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.dicts import describe_differences, differences
from common.errors import UserError
from common.files import file_sha256
from common.paths import display_path
from common.run_folder import RunFolder
from networks import load_network_config
from networks.config import NetworkConfig, network_config_path
from train.config import UNCOMPUTED_KEYS, LoadedConfig, TrainConfig


def pinned_network_config(loaded: LoadedConfig, config: TrainConfig) -> NetworkConfig:
    """The config's shared network config, refused when it no longer hashes as the run's file pins it.

    Raises:
        UserError: Showing both hashes and what differs.
    """
    network_config = load_network_config(config.network)
    if loaded.network_hash and loaded.network_hash != network_config.hash:
        pinned = NetworkConfig.from_dict(loaded.network_config, "pinned") if loaded.network_config else None
        changes = differences(pinned.to_dict(), network_config.to_dict()) if pinned else {}
        detail = describe_differences(changes) or "unknown"
        raise UserError(
            f"{display_path(loaded.source)} pins network config {config.network!r} with hash "
            f"{loaded.network_hash[:12]}, but {display_path(network_config_path(config.network))} now hashes to "
            f"{network_config.hash[:12]} ({detail}). Restore the shared config (the pinned one is inline under "
            "network_config in that file), or remove network_hash and network_config to train with the current one."
        )
    return network_config


def check_changes(changes: dict[str, tuple[Any, Any]], allow_change: Sequence[str], folder: RunFolder) -> None:
    """Refuse config changes on resume unless ``allow_change`` names them (or they are
    :data:`train.config.UNCOMPUTED_KEYS`); the network never changes.

    Raises:
        UserError: Listing the differences and the ``--allow-change`` that would allow them.
    """
    def allowed(key: str) -> bool:
        return any(key == a or key.startswith(f"{a}.") for a in allow_change)

    if "network" in changes:
        raise UserError(f"resume {display_path(folder.path)}: the network cannot change when resuming; start a new run")
    refused = {k: v for k, v in changes.items() if not allowed(k) and k not in UNCOMPUTED_KEYS}
    if refused:
        raise UserError(
            f"resume {display_path(folder.path)}: the config differs from the run's ({describe_differences(refused)}). "
            f"Resuming with a changed config is refused unless you allow it explicitly: --allow-change "
            f"{' '.join(refused)}"
        )


def check_same_lists(recorded: dict[str, Any], current: dict[str, Path], allow_change: Sequence[str],
                     folder: RunFolder) -> dict[str, Any]:
    """Refuse to resume on lists that changed since the run began, unless ``--allow-change data`` allows it.

    Exact resume promises the same data: a list whose bytes differ (labels changed, images added or removed)
    would continue the run on other data without a word.

    Args:
        recorded: The manifest's ``data.lists`` (``{split: {"sha256": ...}}``).
        current: The lists the resumed run reads, by split name.
        allow_change: ``--allow-change`` keys (``data`` allows it).
        folder: The run, for the message.

    Returns:
        ``{split: {"from": old sha256, "to": new sha256}}`` for every list that changed (allowed), for the record.

    Raises:
        UserError: Naming each changed list, when ``data`` is not allowed.
    """
    changed = {}
    for split, path in current.items():
        before = (recorded.get(split) or {}).get("sha256")
        now = file_sha256(path)
        if before is not None and before != now:
            changed[split] = {"from": before, "to": now}
    if changed and "data" not in allow_change:
        shown = "; ".join(f"{split} ({display_path(current[split])}: sha256 {c['from'][:12]}... then, "
                          f"{c['to'][:12]}... now)" for split, c in changed.items())
        raise UserError(f"resume {display_path(folder.path)}: the data changed since the run began: {shown}. Exact "
                        "resume continues on the same data; start a new run, or allow it: --allow-change data")
    return changed
