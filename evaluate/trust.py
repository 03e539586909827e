"""Which folders a command may read images from when a file it was given names them.

An evaluation folder someone sends you says where its images are
(``evaluation.json``'s ``dataset_root``), and a data set folder says where its
linked images came from (``prepare.json``'s ``source`` after a ``--link symlink``
import). Both are text in a file: followed blindly, a forged ``dataset_root: /``
and a row of ``predictions.csv`` would put any image of this machine into a report
as a thumbnail. So a folder read from a file is used only when it is *trusted*:

- it lies below the data folder (:func:`common.paths.data_dir`), where this
  machine's data sets live, or
- it lies below a folder the user named on this command line (``--image-root``,
  or the data set of the list ``evaluate`` was given).

Anything else is ignored with a warning that says how to trust it. A trusted data
set folder still holds its images: :func:`common.lists.resolve_image` follows
symbolic links and checks that the file they reach lies in the folder (or in a
trusted link source).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from common.lists import linked_sources
from common.paths import data_dir, display_path

log = logging.getLogger(__name__)

TRUST_HINT = "name it on the command line with --image-root to trust it"
"""What a warning about an untrusted folder tells the user to do."""


def is_trusted(folder: Path, named: Sequence[Path]) -> bool:
    """Whether ``folder`` (resolved) lies below the data folder or below a folder in ``named``."""
    resolved = Path(folder).resolve()
    homes = [data_dir().resolve(), *(Path(p).resolve() for p in named)]
    return any(resolved.is_relative_to(home) for home in homes)


def recorded_data_set(recorded: str | None, source: str, named: Sequence[Path]) -> Path | None:
    """The data set folder a result file records, when it exists and is trusted; else None.

    Args:
        recorded: The folder as the file records it (``evaluation.json``'s ``dataset_root``).
        source: The file, for the warning.
        named: Folders the user named on the command line.

    Returns:
        The folder, or None (no thumbnails): not recorded, gone, or not trusted (a
        warning says so and how to trust it).
    """
    if not recorded or not Path(recorded).is_dir():
        return None
    if is_trusted(Path(recorded), named):
        return Path(recorded)
    log.warning("%s names the data set folder %s, which is not below the data folder %s: a folder read from a "
                "file is not followed, so there are no thumbnails (%s)", source, recorded,
                display_path(data_dir()), TRUST_HINT)
    return None


def image_homes(root: Path, named: Sequence[Path]) -> tuple[Path, ...]:
    """The folders the images of data set ``root`` may lie in: the folder itself and, when trusted, the
    source folders its ``prepare.json`` names for ``--link symlink`` imports and additions.

    Args:
        root: A trusted data set folder.
        named: Folders the user named on the command line.

    Returns:
        Resolved folders, the data set's first.
    """
    homes = [Path(root).resolve()]
    for source in linked_sources(Path(root)):
        if is_trusted(source, named):
            homes.append(source.resolve())
            continue
        log.warning("%s names %s as the source of its linked images; a folder read from a file is not followed, so "
                    "images linked there get no thumbnail (%s)", display_path(Path(root) / "prepare.json"), source,
                    TRUST_HINT)
    return tuple(homes)
