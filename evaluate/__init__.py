"""The evaluation stage (runs on a box without torch; needs the ``[evaluate]`` Pipfile category).

Reads an ONNX model (its metadata carries the input contract) and a labelled list
file, writes ``output/eval/<name>/``: predictions, metrics, PR curves, confusion
matrices and a bad-case report. It imports neither torch nor another stage. Its
entry point, ``python -m evaluate`` (``pipenv run evaluate``), is delivered by
issue #5; until then ``pipenv run pipeline`` reports this stage as not implemented.
"""
