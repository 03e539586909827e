"""Decoding an image file into a network input: the one deterministic preprocessing.

Training (un-augmented), export parity checks and evaluation all call
:func:`load_image`, so an image reaches the network identically in every stage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from common.contract import InputContract
from common.errors import UserError
from common.lists import Dataset, Sample

log = logging.getLogger(__name__)

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

DECODER_VERSION = 1
"""Bumped whenever :func:`load_image` can return other pixels for the same file (packs record it)."""

ON_UNREADABLE = ("error", "skip")
"""What to do with a listed image that cannot be decoded: stop with an error, or log and skip it."""

SKIP_HINT = ("fix or remove the line, or leave unreadable images out with on_unreadable=skip "
             "(training: data.on_unreadable=skip; evaluation: --on-unreadable skip)")
"""The advice every stage gives with an unreadable listed image."""


class UnreadableImageError(UserError):
    """An image file exists but cannot be decoded.

    Attributes:
        reason: Why, in Pillow's words (without the path).
    """

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


def load_image(path: Path, contract: InputContract) -> np.ndarray:
    """Decode one image file as the network expects it.

    Steps: decode with Pillow, apply the EXIF orientation, convert to
    ``contract.color_mode``, resize to ``(contract.height, contract.width)`` with
    ``contract.interpolation`` (skipped when the size already matches).

    Args:
        path: The image file; any format Pillow reads.
        contract: The network's input contract.

    Returns:
        ``uint8`` array of shape ``(C, H, W)``, values 0..255, channels in
        ``contract.color_mode`` order.

    Raises:
        UnreadableImageError: When the file cannot be decoded.
    """
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert(contract.color_mode)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImageError(f"{path}: cannot decode image ({exc})", reason=str(exc)) from None
    return to_network_input(image, contract)


def to_network_input(image: Image.Image, contract: InputContract) -> np.ndarray:
    """The second half of :func:`load_image`, for an image already decoded and oriented.

    Converts to ``contract.color_mode`` (when it differs) and resizes to the
    contract's size, exactly as :func:`load_image` does.

    Args:
        image: A decoded Pillow image, EXIF orientation applied.
        contract: The network's input contract.

    Returns:
        ``uint8`` array of shape ``(C, H, W)``, values 0..255.
    """
    if image.mode != contract.color_mode:
        image = image.convert(contract.color_mode)
    if image.size != (contract.width, contract.height):
        image = image.resize((contract.width, contract.height), resample=_RESAMPLING[contract.interpolation])
    pixels = np.array(image, dtype=np.uint8)  # a writable copy
    if pixels.ndim == 2:
        return pixels[np.newaxis]  # (H, W) -> (1, H, W)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))  # (H, W, C) -> (C, H, W)


def check_on_unreadable(value: str, key: str = "on_unreadable") -> None:
    """Refuse a value that is not one of :data:`ON_UNREADABLE`.

    Raises:
        UserError: Naming ``key`` and the accepted values.
    """
    if value not in ON_UNREADABLE:
        raise UserError(f"{key}: {value!r} is not one of {list(ON_UNREADABLE)}")


def decode_sample(dataset: Dataset, sample: Sample, contract: InputContract, on_unreadable: str) -> np.ndarray | None:
    """Decode one listed image under the unreadable-image policy every stage shares.

    Args:
        dataset: The data set the sample's path is relative to.
        sample: The sample (its list file and line name it in messages).
        contract: The network's input contract.
        on_unreadable: ``error`` raises; ``skip`` logs a warning and returns None.

    Returns:
        ``uint8`` ``(C, H, W)``, or None for a skipped image.

    Raises:
        UnreadableImageError: ``<list file>:<line>: cannot decode <path> (<reason>)``
            and what to do, when ``on_unreadable`` is ``error``.
    """
    try:
        return load_image(dataset.image_path(sample), contract)
    except UnreadableImageError as exc:
        handle_unreadable(sample, exc.reason, on_unreadable)
        return None


def handle_unreadable(sample: Sample, reason: str, on_unreadable: str) -> None:
    """Apply the unreadable-image policy to a sample that could not be decoded.

    For code that decodes elsewhere (worker processes) and reports back here.

    Raises:
        UnreadableImageError: ``<list file>:<line>: cannot decode <path> (<reason>)``
            and what to do, when ``on_unreadable`` is ``error``; otherwise the same
            text is logged as a warning.
    """
    where = f"{sample.source}:{sample.line}: cannot decode {sample.path} ({reason})"
    if on_unreadable == "error":
        raise UnreadableImageError(f"{where}; {SKIP_HINT}", reason)
    log.warning("skipped an unreadable image: %s", where)


def load_samples(
    dataset: Dataset,
    samples: Sequence[Sample],
    contract: InputContract,
    on_unreadable: str = "error",
) -> tuple[np.ndarray, np.ndarray, list[Sample]]:
    """Decode a list of samples into one array, for data sets that fit in memory.

    Every image is decoded once, by :func:`decode_sample`.

    Args:
        dataset: The data set the sample paths are relative to.
        samples: The samples, e.g. from :func:`common.lists.read_split`.
        contract: The network's input contract.
        on_unreadable: ``"error"`` or ``"skip"`` (see :func:`decode_sample`).

    Returns:
        ``(images, labels, kept)``: ``uint8`` images ``(N, C, H, W)``, ``int64``
        labels ``(N,)`` and the samples that were decoded, in order.

    Raises:
        UnreadableImageError: On an unreadable image when ``on_unreadable="error"``,
            or when every image was skipped.
    """
    check_on_unreadable(on_unreadable)
    images = np.empty((len(samples), *contract.shape), dtype=np.uint8)
    kept: list[Sample] = []
    for sample in samples:
        image = decode_sample(dataset, sample, contract, on_unreadable)
        if image is not None:
            images[len(kept)] = image
            kept.append(sample)
    if samples and not kept:
        raise UnreadableImageError(f"{samples[0].source}: none of the {len(samples)} images could be decoded")
    labels = np.fromiter((s.label for s in kept), dtype=np.int64, count=len(kept))
    return images[: len(kept)], labels, kept
