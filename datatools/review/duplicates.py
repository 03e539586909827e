"""Exact and near-duplicate images, within and across a data set's lists.

Every listed image is decoded once (:func:`common.images.decode_image`, the stages'
rules) into three fingerprints:

- a sha256 of the decoded pixels: equal means the same picture, whatever the file
  format or metadata (an exact duplicate);
- a perceptual hash (imagehash's ``phash``, 64 bits): re-encoded, resized or slightly
  edited copies differ in a few bits;
- the image at 16x16 gray, centred and normalised: the correlation of two of them
  (1: the same picture).

A pair is a near-duplicate when its hashes differ in at most ``max_distance`` bits
*and* its correlation is at least ``min_similarity``: the hash finds candidates fast
(all pairs, 64-bit XOR and a bit count), the correlation keeps look-alikes out, which
matters for small images whose hashes are close by chance (two different 8x8 digits
often are). Defaults: :data:`MAX_DISTANCE`, :data:`MIN_SIMILARITY`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_DISTANCE = 8
"""Largest Hamming distance (of 64 bits) between the perceptual hashes of a near-duplicate pair."""

MIN_SIMILARITY = 0.99
"""Smallest correlation of a near-duplicate pair at 16x16 gray. Re-encoded copies (JPEG quality 70, resized by 10%)
of 32x32 images score above 0.999; two different 8x8 digits reach 0.99 in 4 of 1.6 million pairs."""

SIDE = 16
"""Side of the gray thumbnail whose correlation verifies a candidate pair."""

BLOCK = 1024
"""Rows compared at once in the all-pairs search (memory: ``BLOCK`` x images bytes)."""


@dataclass
class Fingerprints:
    """The fingerprints of images that could be decoded, and the files that could not.

    Attributes:
        paths: The decoded images, in order.
        phash: Perceptual hashes ``(N,)`` uint64.
        pixels: sha256 of each image's decoded pixels.
        vectors: Centred, normalised 16x16 gray images ``(N, 256)`` float32 (zero for a flat image).
        unreadable: ``path -> reason`` of images that could not be decoded.
    """

    paths: list[str]
    phash: np.ndarray
    pixels: list[str]
    vectors: np.ndarray
    unreadable: dict[str, str]


@dataclass(frozen=True)
class Pair:
    """Two images that show the same picture.

    Attributes:
        first: Index of one image in :attr:`Fingerprints.paths`.
        second: Index of the other.
        distance: Hamming distance of their perceptual hashes.
        similarity: Correlation at 16x16 gray.
        exact: Same decoded pixels.
    """

    first: int
    second: int
    distance: int
    similarity: float
    exact: bool


def fingerprint(path: Path) -> tuple[int, str, np.ndarray]:
    """``(phash as an integer, sha256 of the decoded pixels, 16x16 gray vector)`` of an image file.

    Raises:
        common.images.UnreadableImageError: When the file cannot be decoded.
    """
    import imagehash
    from PIL import Image

    from common.images import decode_image

    image = decode_image(path)
    digest = hashlib.sha256(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()
    gray = image.convert("L")
    bits = np.packbits(imagehash.phash(gray).hash.ravel())  # (8, 8) bool -> (64,) -> 8 bytes
    small = np.asarray(gray.resize((SIDE, SIDE), Image.Resampling.BILINEAR), dtype=np.float64).ravel()
    small -= small.mean()
    norm = np.linalg.norm(small)
    return int.from_bytes(bits.tobytes(), "big"), digest, (small / norm if norm > 0 else small).astype(np.float32)


def fingerprints(root: Path, paths: list[str], workers: int = 0) -> Fingerprints:
    """Fingerprint every image (in threads, through the one batch decoder).

    Args:
        root: The data set folder the paths are relative to.
        paths: The images.
        workers: Decoding threads (0: one per core).
    """
    from common.images import UnreadableImageError, decode_in_batches

    kept, hashes, pixels, vectors, unreadable = [], [], [], [], {}
    for pairs in decode_in_batches(paths, lambda p: Path(root) / p, fingerprint, 256, workers):
        for path, result in pairs:
            if isinstance(result, UnreadableImageError):
                unreadable[path] = result.reason
                continue
            kept.append(path)
            hashes.append(result[0])
            pixels.append(result[1])
            vectors.append(result[2])
    return Fingerprints(kept, np.array(hashes, dtype=np.uint64), pixels,
                        np.stack(vectors) if vectors else np.empty((0, SIDE * SIDE), np.float32), unreadable)


def duplicate_pairs(prints: Fingerprints, max_distance: int = MAX_DISTANCE, min_similarity: float = MIN_SIMILARITY,
                    only: np.ndarray | None = None) -> list[Pair]:
    """Every pair of images that are exact or near duplicates (see the module docstring), closest first.

    All pairs are compared, ``BLOCK`` rows at a time: 10,000 images are 50 million hash
    comparisons, a second or two.

    Args:
        prints: The images' fingerprints.
        max_distance: Largest Hamming distance of the perceptual hashes.
        min_similarity: Smallest 16x16 gray correlation (exact copies always count).
        only: Indices of the images to pair with all the others (e.g. new ones); None: every pair.
    """
    count = len(prints.paths)
    queries = np.arange(count) if only is None else np.asarray(only, dtype=np.int64)
    is_query = np.zeros(count, dtype=bool)
    is_query[queries] = True
    found = []
    for start in range(0, len(queries), BLOCK):
        rows = queries[start:start + BLOCK]
        distances = np.bitwise_count(prints.phash[rows][:, None] ^ prints.phash[None, :])  # (B, N) bits that differ
        once = ~is_query[None, :] | (np.arange(count)[None, :] > rows[:, None])  # each pair once, never (i, i)
        for row, column in zip(*np.nonzero((distances <= max_distance) & once)):
            i, j = int(rows[row]), int(column)
            similarity = float(prints.vectors[i] @ prints.vectors[j])
            exact = prints.pixels[i] == prints.pixels[j]
            if exact or similarity >= min_similarity:
                found.append(Pair(i, j, int(distances[row, column]), 1.0 if exact else similarity, exact))
    return sorted(found, key=lambda pair: (not pair.exact, -pair.similarity, pair.distance))
