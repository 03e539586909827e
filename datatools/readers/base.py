"""What every reader returns: the images of a source, each with its class name (and maybe its split)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class LabelledImage:
    """One image of a source, with its class.

    Attributes:
        path: The image file (absolute, or relative to the working directory).
        label: Its class name.
        name: Where it goes inside the data set, relative to ``raw/`` (``/``-separated), e.g.
            ``daisy/001.jpg``; unique within a source.
        split: The split the source assigns (``train``, ``val`` or ``test``), or None to let
            the importer's stratified, seeded rule assign one.
        where: Where the source names it, for messages (``labels.csv:12``, ``daisy/001.jpg``).
    """

    path: Path
    label: str
    name: str
    split: str | None = None
    where: str = ""


@dataclass(frozen=True)
class LeftOut:
    """A file of the source that is not in the data set.

    Attributes:
        path: The file, as the source names it.
        reason: Why (Pillow's message for an unreadable image).
    """

    path: str
    reason: str


@dataclass
class SourceImages:
    """What a reader found.

    Attributes:
        images: The images, in the source's order.
        classes: The class names, in label order (line ``i`` of ``classes.txt`` is label ``i``).
        left_out: Files the reader itself left out, with the reason (the importer adds the
            unreadable ones).
        description: What was read, for the list files' first line (``folder ~/photos``).
    """

    images: list[LabelledImage]
    classes: list[str]
    left_out: list[LeftOut] = field(default_factory=list)
    description: str = ""


class Reader(ABC):
    """A source format: finds the images and their class names; reports every problem at once.

    Subclasses are registered with :func:`datatools.readers.register_reader`; their
    constructor takes the source path, then keyword options (``--reader-option``).

    Attributes:
        source: The source (a folder, a manifest file, ...).
        what: How the command line names the source, e.g. ``--from-csv labels.csv``.
    """

    option_help: ClassVar[str] = "a source"
    """What ``--from-<name>`` takes, for ``--help`` (``a folder of class folders``)."""

    def __init__(self, source: Path):
        self.source = Path(source)

    @abstractmethod
    def read(self) -> SourceImages:
        """Find the images and their classes.

        Raises:
            UserError: For a source that cannot be read at all.
            FileProblems: Listing every problem found (each with its file and line),
                when any row or file cannot become part of the data set.
        """
