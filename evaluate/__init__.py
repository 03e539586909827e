"""The evaluation stage (runs on a box without torch; needs the ``[evaluate]`` Pipfile category).

Reads an ONNX model (its card carries the input contract) and a labelled list file,
writes ``output/eval/<name>/``: predictions, metrics with 95% intervals, calibration,
PR curves, confusion matrices, a reliability diagram, a bad-case report and a report
that opens with its headline. It imports neither torch nor another stage.
``python -m evaluate`` (``pipenv run evaluate``) parses the command line and calls::

    from evaluate.evaluation import EvaluateOptions, evaluate, rescore
    from evaluate.compare import compare_evaluations

Every figure (accuracy, F1, AP, calibration, ...) is one module of
:mod:`evaluate.figures`, registered by name; :mod:`evaluate.scoring` computes them all
into one typed :class:`evaluate.scoring.Scores`, which the reports and ``compare`` lay out.
"""
