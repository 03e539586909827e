"""The data tools: make, inspect and keep data sets (``pipenv run prepare-data``, ``inspect-data``).

A data set is a folder ``data/<ds>/`` (raw images, ``classes.txt``, list files; see
:mod:`common.lists`). These commands write and examine such folders; the stages only
read them. Nothing here imports torch, except ``inspect-data --write-network``, which
asks the network registry (the workstation's) to check the config it writes.

- :mod:`datatools.readers`: one reader per source format (a class-per-folder tree, a
  CSV manifest, ...), registered by name; adding a format is one module there.
- :mod:`datatools.importer`: what any reader found -> a new data set folder.
- :mod:`datatools.inspect`, :mod:`datatools.profile`: look at a data set before training.

``python -m datatools <command>`` is the command line (see ``__main__.py``).
"""
