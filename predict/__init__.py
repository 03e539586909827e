"""Prediction: a deployed model on new, unlabelled images (runs without torch, on the evaluation box too).

Reads an ONNX model (its card carries the input contract) and images (folders, globs,
files, list files, files of paths), writes ``output/predict/<name>/``: the rows
(``predictions.csv`` or ``.jsonl``), the unreadable files, the record, a report, and
with ``--rank uncertainty`` a ``to_label.txt``. It imports ``common`` only.
``python -m predict`` (``pipenv run predict``) parses the command line and calls::

    from predict import predict, PredictOptions, merge_shards

From Python, one image or a thousand::

    from predict import Classifier, Thresholds

    classifier = Classifier.load("model/digits.onnx")
    results = classifier.predict(["a.png", "b.jpg"])

Attribute access is lazy: importing the package imports neither numpy nor onnxruntime.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {"Classifier": "predict.classifier", "Prediction": "predict.classifier", "ClassScore": "predict.classifier",
            "Thresholds": "predict.decisions", "ABSTAIN": "predict.decisions", "predict": "predict.run",
            "PredictOptions": "predict.run", "PredictResult": "predict.run", "merge_shards": "predict.merge"}
"""Public name -> the module that defines it."""


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'predict' has no attribute {name!r}")


__all__ = list(_EXPORTS)
