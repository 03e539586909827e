"""Code every stage may import: paths, the input contract, list files, image decoding.

Nothing here imports torch or any stage package, because the evaluation machine
installs only the ``[evaluate]`` Pipfile category.
"""
