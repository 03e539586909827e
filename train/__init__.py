"""The training stage (runs on the GPU box; needs the ``[train]`` Pipfile category).

Reads a data set (``data/<ds>/``) and a shared network config, writes a run folder
``output/train/<run>/`` (frozen config, manifest, logs, checkpoints). Its entry point,
``python -m train`` (``pipenv run train``), is delivered by issue #3; until then
``pipenv run pipeline`` reports this stage as not implemented.
"""
