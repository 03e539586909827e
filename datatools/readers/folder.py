"""A folder of class folders (torchvision's ``ImageFolder`` layout)::

    photos/
        daisy/001.jpg
        daisy/2024/summer/002.png      nested folders inside a class are fine
        rose/...

The class names are the folder names, sorted; every non-hidden file below a class
folder is an image of that class (files Pillow cannot read are left out by the
importer). Symbolic links are followed. Each image goes to ``raw/<class>/<path in
its class folder>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from common.errors import UserError
from common.lists import name_problem
from common.paths import display_path
from datatools.readers import register_reader
from datatools.readers.base import LabelledImage, LeftOut, Reader, SourceImages


@register_reader("folder")
class ClassFolders(Reader):
    """One subfolder of images per class."""

    option_help = "a folder holding one subfolder of images per class (nested folders allowed)"

    def read(self) -> SourceImages:
        """The class folders' images.

        Raises:
            UserError: When the source is not a folder, has fewer than two class folders, or a
                folder name cannot be a class name.
        """
        source = self.source
        if not source.is_dir():
            found = "a file, not a folder" if source.exists() else "no such folder"
            raise UserError(f"--from-folder {display_path(source)}: {found} (expected one subfolder of images per "
                            "class)")
        classes = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(classes) < 2:
            raise UserError(f"{display_path(source)}: found {len(classes)} class folder(s); a classifier needs at "
                            "least two (one subfolder of images per class)")
        bad = {name: problem for name in classes if (problem := name_problem(name))}
        if bad:
            listed = "; ".join(f"{name!r}: {problem}" for name, problem in bad.items())
            raise UserError(f"{display_path(source)}: folder name(s) that cannot be class names ({listed}); rename "
                            "them")
        left_out = [LeftOut(p.name, "not inside a class folder") for p in sorted(source.iterdir())
                    if p.is_file() and not p.name.startswith(".")]
        images = []
        for name in classes:
            for path in files_below(source / name):
                relative = path.relative_to(source / name).as_posix()
                shown = f"{name}/{relative}"
                problem = name_problem(relative)
                if problem:
                    left_out.append(LeftOut(shown, f"its name cannot go in a list file ({problem}); rename it"))
                    continue
                images.append(LabelledImage(path, name, shown, where=shown))
        return SourceImages(images, classes, left_out, f"folder {display_path(source)}")


def files_below(folder: Path) -> list[Path]:
    """Every non-hidden file below ``folder``, in non-hidden folders, sorted by path; links are followed."""
    found = []
    for top, folders, names in os.walk(folder, followlinks=True):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        found += [Path(top) / name for name in names if not name.startswith(".")]
    return sorted(found)
