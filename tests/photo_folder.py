"""A user's photo folder, generated: one subfolder per class, mixed formats, modes and sizes.

Built from scikit-learn's two bundled sample photos (no download), so a small CNN
tells the classes apart within a few epochs:

- ``temple``: crops of ``china.jpg``;
- ``flower``: crops of ``flower.jpg``;
- ``violet``: crops of ``flower.jpg`` with the colour channels rotated (R, G, B -> B, R, G).

Every class mixes JPEG and PNG, colour and grayscale files, and sizes from 24 to 48
pixels, and has some images in a nested folder, so no format, mode or size marks a
class. The folder also holds files Pillow cannot read: a damaged JPEG and a text file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("flower", "temple", "violet")
"""The class folders, sorted as the import sorts them."""

UNREADABLE = ("temple/broken.jpg", "flower/notes.txt")
"""Files below the folder that are not images."""


def write_photo_folder(root: Path, per_class: int = 40, seed: int = 0) -> Path:
    """Write the folder (see the module docstring) and return it.

    Args:
        root: The folder to create.
        per_class: Readable images per class.
        seed: Seed of the crops, sizes, formats and modes.
    """
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images  # (427, 640, 3) uint8 each
    sources = {"temple": china, "flower": flower, "violet": flower[:, :, [2, 0, 1]]}
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        photo = sources[name]
        for index in range(per_class):
            side = int(rng.integers(120, 260))
            top, left = int(rng.integers(0, photo.shape[0] - side)), int(rng.integers(0, photo.shape[1] - side))
            image = Image.fromarray(photo[top:top + side, left:left + side])
            size = int(rng.integers(24, 49))
            image = image.resize((size, size + int(rng.integers(-4, 5))), Image.Resampling.BILINEAR)
            if index % 5 == 4:
                image = image.convert("L")
            folder = root / name / ("more" if index % 4 == 3 else "")
            folder.mkdir(parents=True, exist_ok=True)
            if index % 2:
                image.save(folder / f"{index:03d}.png")
            else:
                image.save(folder / f"{index:03d}.jpg", quality=90)
    (root / UNREADABLE[0]).write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (root / UNREADABLE[1]).write_text("taken in May\n")
    return root
