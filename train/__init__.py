"""The training stage (runs on the GPU box; needs the ``[train]`` Pipfile category).

Reads a data set (``data/<ds>/``) and a shared network config, writes a run folder
``output/train/<run>/`` (frozen config, manifest, log, metrics, TensorBoard events,
checkpoints). ``python -m train`` (``pipenv run train``) parses the command line and
calls one of::

    from train import train, resume, RunOptions
    from train.config import load_train_config

    result = train(load_train_config(overrides=["epochs=5"]), RunOptions(dev=True))
    result = resume("last", overrides=["epochs=80"], allow_change=["epochs"])

Attribute access is lazy, so importing the package (as ``pipenv run pipeline`` does
to find its entry point) does not import torch.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {"train": "train.run", "resume": "train.run", "RunOptions": "train.run", "RunResult": "train.run",
            "Trainer": "train.loop.trainer", "Hook": "train.loop.hooks"}
"""Public name -> the module that defines it."""


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'train' has no attribute {name!r}")


__all__ = list(_EXPORTS)
