"""Image files that are hard to make with Pillow itself: huge blank PNGs written without holding their pixels."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

PNG_COLOUR_TYPES = {"L": (0, 1), "RGB": (2, 3)}
"""Pillow mode -> (PNG colour type, channels)."""


def write_blank_png(path: Path, width: int, height: int, mode: str = "L") -> Path:
    """Write an all-black 8-bit PNG of any size, row by row: a 13000 x 13000 image is a 160 kB file.

    Such a file is what a decompression bomb looks like: tiny on disk, gigabytes decoded.
    """
    colour_type, channels = PNG_COLOUR_TYPES[mode]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = bytes(1 + width * channels)  # filter byte 0, then the row's samples
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return Path(path)
