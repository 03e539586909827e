"""The deployment stage (runs on the packaging box; needs the ``[deploy]`` Pipfile category).

Reads a training run's config and checkpoint, writes a self-describing ONNX model
``model/<name>.onnx`` with its card ``model/<name>.json``. Its entry point,
``python -m deploy`` (``pipenv run export``), is delivered by issue #4; until then
``pipenv run pipeline`` reports this stage as not implemented.
"""
