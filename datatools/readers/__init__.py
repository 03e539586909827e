"""Readers of source formats: where a data set's images and their class names come from.

Each format is one module of this package holding a :class:`datatools.readers.base.Reader`
subclass registered by name::

    @register_reader("csv")
    class CsvManifest(Reader):
        ...

``prepare-data`` gives every registered reader its own option, ``--from-<name>``
(``--from-folder``, ``--from-csv``), and passes ``--reader-option key=value`` to the
reader's constructor, checked against its signature. Modules here are discovered on
the first lookup (:class:`common.registry.Registry`), like the networks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.registry import Registry
from datatools.readers.base import LabelledImage, LeftOut, Reader, SourceImages

READERS: Registry[type[Reader]] = Registry("reader", "datatools.readers", Reader)
"""Every source format, by name."""

register_reader = READERS.register


def build_reader(name: str, source: Path, options: dict[str, Any] | None = None) -> Reader:
    """The reader registered as ``name``, for ``source``, with its options checked against its signature.

    Raises:
        UserError: For an unknown reader (listing the registered ones) or options it does not take.
    """
    options = dict(options or {})
    cls = READERS.check_params(name, options, where="--reader-option: ")
    return cls(Path(source), **options)


__all__ = ["READERS", "LabelledImage", "LeftOut", "Reader", "SourceImages", "build_reader", "register_reader"]
