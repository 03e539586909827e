"""Thumbnails for reports: an image file scaled to fit a square, and what the network saw of it.

Used by every report that shows images (the evaluation's bad cases and comparisons,
prediction reports, data reviews). Files are decoded at reduced scale
(:func:`common.images.load_thumbnail`), so a huge image costs little memory; the
caller decides which files may be read (trust), this module only draws them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common.contract import InputContract
from common.errors import UserError

THUMB_SIZE = 96
"""Largest side of a thumbnail, in pixels; smaller images are enlarged with sharp pixels."""

PNG_COMPRESSION = 1
"""zlib level of the thumbnails' PNGs: a 224x224 network input encodes in 3.5 ms at 1 against 9 ms at Pillow's
default 6 (the 2-core VM), for slightly larger files; reports draw hundreds of them."""


@dataclass
class Thumbnails:
    """Thumbnail files by key (a row number, a name), relative to the report folder.

    Attributes:
        original: The image file, scaled to fit ``THUMB_SIZE``.
        network_input: The network's input at the contract's size (when the contract is known).
        input_size: The contract's size as ``"<width>x<height>"`` (empty without a contract).
    """

    original: dict[Hashable, str] = field(default_factory=dict)
    network_input: dict[Hashable, str] = field(default_factory=dict)
    input_size: str = ""


def write_thumbnails(folder: Path, sources: Mapping[Hashable, Path], contract: InputContract | None = None,
                     subfolder: str = "thumbs", workers: int = 4) -> Thumbnails:
    """``<subfolder>/<key>.png`` (the file, scaled) and ``<subfolder>/<key>-input.png`` (the network input).

    A file that is missing or unreadable gets no thumbnail. Files are drawn in
    ``workers`` threads (Pillow decodes and encodes without the GIL).

    Args:
        folder: The report folder.
        sources: Key (a row number, a name) -> the image file to draw; keys must be safe file names.
        contract: The model's input contract (None: no network-input images).
        subfolder: The folder, inside ``folder``, the images go to.
        workers: Drawing threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    thumbs = Thumbnails(input_size=f"{contract.width}\u00d7{contract.height}" if contract else "")
    if not sources:
        return thumbs
    (folder / subfolder).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        drawn = list(pool.map(lambda item: _draw(folder, subfolder, *item, contract), sources.items()))
    for key, (original, network_input) in zip(sources, drawn):
        if original:
            thumbs.original[key] = original
        if network_input:
            thumbs.network_input[key] = network_input
    return thumbs


def _draw(folder: Path, subfolder: str, key: Hashable, source: Path, contract: InputContract | None
          ) -> tuple[str | None, str | None]:
    """Draw one file's thumbnail (and network input); their paths relative to ``folder``, None where not drawn."""
    from PIL import Image

    from common.images import load_image, load_thumbnail

    try:
        image = load_thumbnail(source, THUMB_SIZE)
        pixels = load_image(source, contract) if contract is not None else None
    except UserError:
        return None, None
    if max(image.size) < THUMB_SIZE:  # small images are enlarged, pixels kept sharp
        scale = THUMB_SIZE / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.NEAREST)
    image.save(folder / subfolder / f"{key}.png", compress_level=PNG_COMPRESSION)
    if pixels is None:
        return f"{subfolder}/{key}.png", None
    # (C, H, W) -> (H, W) for one channel, (H, W, C) for three
    array = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    Image.fromarray(array).save(folder / subfolder / f"{key}-input.png", compress_level=PNG_COMPRESSION)
    return f"{subfolder}/{key}.png", f"{subfolder}/{key}-input.png"
