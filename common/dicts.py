"""Comparing nested mappings (configs, model cards)."""

from __future__ import annotations

from typing import Any


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two nested mappings, with both values.

    A key missing on one side shows as None there.
    """
    out: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(differences(a, b, f"{path}."))
        elif a != b:
            out[path] = (a, b)
    return out


def describe_differences(changes: dict[str, tuple[Any, Any]]) -> str:
    """``key: old -> new`` for each difference, comma-separated."""
    return ", ".join(f"{key}: {a!r} -> {b!r}" for key, (a, b) in changes.items())
