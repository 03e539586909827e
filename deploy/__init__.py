"""The deployment stage (runs on the packaging box; needs the ``[deploy]`` Pipfile category).

Reads a training run's ``config.yaml`` and a checkpoint, writes a self-describing,
parity-checked ONNX model ``model/<name>.onnx`` with its card ``model/<name>.json``
(and optionally ``model/<name>-int8.onnx``). ``python -m deploy``
(``pipenv run export``) parses the command line and calls::

    from deploy import export, ExportOptions

    result = export(ExportOptions(run="last", checkpoint="best", quantize="int8"))

Attribute access is lazy, so importing the package does not import torch.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = ("export", "ExportOptions", "ExportResult", "ParityError")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from deploy import export as module

        return getattr(module, name)
    raise AttributeError(f"module 'deploy' has no attribute {name!r}")


__all__ = list(_EXPORTS)
