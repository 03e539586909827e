"""The deployment stage (runs on the packaging box; needs the ``[deploy]`` Pipfile category).

Reads a training run's ``config.yaml`` and a checkpoint, writes a self-describing,
parity-checked ONNX model ``model/<name>.onnx`` with its card ``model/<name>.json``
(and optionally ``model/<name>-int8.onnx``). ``python -m deploy``
(``pipenv run export``) parses the command line and calls::

    from deploy.export import ExportOptions, export

    result = export(ExportOptions(run="last", checkpoint="best", quantize="int8"))

Attribute access is lazy, so importing the package does not import torch.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = ("ExportOptions", "ExportResult", "ParityError")
"""Names of :mod:`deploy.export` also reachable as ``deploy.<name>``; the function itself is
``deploy.export.export`` (``deploy.export`` is its module)."""


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module("deploy.export"), name)
    raise AttributeError(f"module 'deploy' has no attribute {name!r}")


__all__ = list(_EXPORTS)
