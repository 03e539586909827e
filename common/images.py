"""Decoding an image file into a network input: the one deterministic preprocessing.

Training (un-augmented), export parity checks and evaluation all call
:func:`load_image`, so an image reaches the network identically in every stage.
Every other reader of images (thumbnails, sample grids, data checks) goes through
:func:`decode_image` or :func:`load_thumbnail`, which share its rules:

- **High bit depth** is scaled to 8 bits, never clipped: 16-bit images (Pillow modes
  ``I;16``, ``I;16B``, ``I;16L``, ``I;16N``) keep their high byte (``value >> 8``,
  what Pillow itself does for 16-bit colour PNGs, so 16-bit gray and colour agree);
  32-bit integer images (``I``) must hold 0..65535 and are scaled the same way;
  float images (``F``) must hold 0..1 and become ``round(value * 255)``. Values
  outside those ranges (or not finite) make the image unreadable: there is no scale
  to guess.
- **Decompression bombs**: an image of more than :data:`MAX_PIXELS` pixels is
  unreadable (Pillow warns there and refuses at twice as many), so a small file
  that unpacks to gigabytes is never decoded.
- An unreadable image is handled by the one unreadable-image policy
  (:func:`decode_sample`), named with its list file and line.
"""

from __future__ import annotations

import logging
import os
import stat
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
from PIL import Image, ImageOps

from common.contract import InputContract
from common.errors import UserError
from common.limits import MAX_PIXELS
from common.lists import Dataset, Sample

log = logging.getLogger(__name__)

T = TypeVar("T")
D = TypeVar("D")

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

DECODER_VERSION = 2
"""Bumped whenever :func:`load_image` can return other pixels for the same file (packs record it).

2: high-bit-depth images scaled to 8 bits instead of clipped; decompression bombs refused."""


HIGH_BIT_DEPTH = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}
"""Pillow modes scaled to 8 bits by :func:`to_8bit`, and the largest value each may hold."""

DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
"""What Pillow raises for a file it cannot decode (``UnidentifiedImageError`` is an ``OSError``)."""

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

    Steps: :func:`decode_image` (decode with Pillow, apply the EXIF orientation,
    scale high bit depths to 8 bits, convert to ``contract.color_mode``), then resize
    to ``(contract.height, contract.width)`` with ``contract.interpolation`` (skipped
    when the size already matches).

    Args:
        path: The image file; any format Pillow reads.
        contract: The network's input contract.

    Returns:
        ``uint8`` array of shape ``(C, H, W)``, values 0..255, channels in
        ``contract.color_mode`` order.

    Raises:
        UnreadableImageError: When the file cannot be decoded.
    """
    return to_network_input(decode_image(path, contract.color_mode), contract)


def to_network_input(image: Image.Image, contract: InputContract) -> np.ndarray:
    """The second half of :func:`load_image`, for an image already decoded and oriented.

    Scales a high bit depth to 8 bits (:func:`to_8bit`), converts to
    ``contract.color_mode`` (when it differs) and resizes to the contract's size,
    exactly as :func:`load_image` does.

    Args:
        image: A decoded Pillow image, EXIF orientation applied.
        contract: The network's input contract.

    Returns:
        ``uint8`` array of shape ``(C, H, W)``, values 0..255.

    Raises:
        ValueError: For high-bit-depth values outside their mode's range.
    """
    image = to_8bit(image)
    if image.mode != contract.color_mode:
        image = image.convert(contract.color_mode)
    if image.size != (contract.width, contract.height):
        image = image.resize((contract.width, contract.height), resample=_RESAMPLING[contract.interpolation])
    pixels = np.array(image, dtype=np.uint8)  # a writable copy
    if pixels.ndim == 2:
        return pixels[np.newaxis]  # (H, W) -> (1, H, W)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))  # (H, W, C) -> (C, H, W)


def prepare_image(image: Image.Image, contract: InputContract, name: str = "image") -> np.ndarray:
    """An image already in memory as the network expects it: what :func:`load_image` does after reading a file.

    The EXIF orientation is applied (a no-op for an image without one, or one already
    turned upright), then :func:`to_network_input`; so ``Image.open(path)`` given here
    gives bitwise the pixels :func:`load_image` gives for ``path``.

    Args:
        image: A Pillow image, any mode Pillow can convert.
        contract: The network's input contract.
        name: What to call the image in an error.

    Returns:
        ``uint8`` array of shape ``(C, H, W)``, values 0..255.

    Raises:
        UnreadableImageError: When the image cannot be decoded or converted.
    """
    try:
        if image.width * image.height > MAX_PIXELS:
            raise Image.DecompressionBombError(f"{image.width}x{image.height} pixels, more than the {MAX_PIXELS:,} "
                                               "this project decodes")
        return to_network_input(ImageOps.exif_transpose(image), contract)
    except DECODE_ERRORS as exc:
        raise UnreadableImageError(f"{name}: cannot use image ({exc})", reason=str(exc)) from None


@contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """Open an image file (its header: nothing is decoded yet), refusing decompression bombs and
    anything that is not a regular file.

    The file is opened without blocking and checked to be a regular file before Pillow
    reads a byte, so a FIFO, a device or a folder named ``x.png`` is refused at once
    (a FIFO would block the read for ever), whatever it was when it was listed.

    Yields:
        The opened Pillow image; it is closed on leaving the block.

    Raises:
        PIL.Image.DecompressionBombError: For more than :data:`MAX_PIXELS` pixels.
        OSError: When the file is not a regular file, or Pillow cannot identify or open it.
    """
    with open_regular_file(path) as stream:
        with warnings.catch_warnings():
            # We refuse above MAX_PIXELS ourselves, so Pillow's warning would only be noise. catch_warnings
            # is not thread-safe: at worst, racing threads leave this one "ignore" filter installed.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(stream)
        with opened:
            yield _refuse_bomb(opened)


def open_regular_file(path: Path) -> BinaryIO:
    """Open a file for reading, without blocking, only when it is a regular file.

    Raises:
        OSError: When it cannot be opened, or is a FIFO, a device, a socket or a folder.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)  # no effect on regular files
    descriptor = os.open(path, flags)
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "a device")
            raise OSError(f"not a regular file but {kind}")
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _refuse_bomb(opened: Image.Image) -> Image.Image:
    """``opened``, when it has at most :data:`MAX_PIXELS` pixels.

    Raises:
        PIL.Image.DecompressionBombError: Otherwise.
    """
    pixels = opened.width * opened.height
    if pixels > MAX_PIXELS:
        raise Image.DecompressionBombError(
            f"decompression bomb: {opened.width}x{opened.height} = {pixels:,} pixels, more than the "
            f"{MAX_PIXELS:,} this project decodes")
    return opened


def decode_image(path: Path, mode: str | None = None, fit: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image file: EXIF orientation applied, 8 bits per channel.

    Holds at most the decoded file and one converted copy in memory.

    Args:
        path: The image file.
        mode: Pillow mode to convert to (``L``, ``RGB``); None keeps the file's
            (after :func:`to_8bit`).
        fit: For previews only, never for a network input: decode at reduced scale
            where the format allows (JPEG, ``Image.draft``) and shrink to fit
            ``(width, height)``, keeping the aspect ratio (never enlarged).

    Returns:
        The decoded image.

    Raises:
        UnreadableImageError: ``<path>: cannot decode image (<reason>)``.
    """
    try:
        with open_image(path) as opened:
            if fit is not None:
                opened.draft(None, fit)  # JPEG: decode at 1/2..1/8 scale, still at least `fit`
            opened.load()
            ImageOps.exif_transpose(opened, in_place=True)
            image = to_8bit(opened)
            if fit is not None:
                image.thumbnail(fit, Image.Resampling.LANCZOS)  # in place, from the (reduced) decode
            if mode and image.mode != mode:
                return image.convert(mode)
            return image.copy() if image is opened else image  # the opened image is released on closing
    except DECODE_ERRORS as exc:
        raise UnreadableImageError(f"{path}: cannot decode image ({exc})", reason=str(exc)) from None


def load_thumbnail(path: Path, size: int) -> Image.Image:
    """An RGB preview of an image file that fits a ``size`` x ``size`` square, from a reduced decode.

    Memory is bounded by the thumbnail for JPEGs, and by :data:`MAX_PIXELS` for any
    file. Smaller images are not enlarged.

    Raises:
        UnreadableImageError: When the file cannot be decoded.
    """
    return decode_image(path, "RGB", fit=(size, size))


def to_8bit(image: Image.Image) -> Image.Image:
    """Scale a high-bit-depth image to 8-bit ``L``; other images are returned as they are.

    ``I;16*``: ``value >> 8``. ``I``: values must be within 0..65535, then ``>> 8``.
    ``F``: values must be within 0..1, then ``round(value * 255)``.

    Raises:
        ValueError: When the values are outside their mode's range or not finite.
    """
    largest = HIGH_BIT_DEPTH.get(image.mode)
    if largest is None:
        return image
    values = np.asarray(image)  # (H, W): uint16, int32 or float32
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if not (np.isfinite(low) and np.isfinite(high) and 0 <= low and high <= largest):
        raise ValueError(f"mode {image.mode} image with values {low:g}..{high:g}; this project reads 0..{largest:g} "
                         "(see docs/data.md, 'Images')")
    if image.mode == "F":
        scaled = np.rint(values * np.float32(255)).astype(np.uint8)
    else:
        scaled = (values >> 8).astype(np.uint8)
    return Image.fromarray(scaled)  # (H, W) uint8 -> mode L


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
    apply_unreadable_policy(f"{sample.source}:{sample.line}: cannot decode {sample.path} ({reason})", reason,
                            on_unreadable)


def apply_unreadable_policy(where: str, reason: str, on_unreadable: str, hint: str = SKIP_HINT) -> None:
    """The unreadable-image policy itself, for an image named by ``where`` (a list line, a path).

    Raises:
        UnreadableImageError: ``<where>; <hint>`` when ``on_unreadable`` is ``error``;
            otherwise ``where`` is logged as a warning.
    """
    if on_unreadable == "error":
        raise UnreadableImageError(f"{where}; {hint}", reason)
    log.warning("skipped an unreadable image: %s", where)


def decode_in_batches(items: Sequence[T], path_of: Callable[[T], Path], decode: Callable[[Path], D],
                      batch_size: int, workers: int = 0) -> Iterator[list[tuple[T, D | UnreadableImageError]]]:
    """Decode image files in threads, one batch ahead of the consumer: the one batch decoder.

    Evaluation, prediction, packing, in-memory training data and the data tools all
    decode through it. Pillow releases the GIL while it decodes, so ``workers``
    threads decode in parallel; at most two batches are decoded or waiting at any
    time, so memory stays bounded by the batch however many items there are. Results
    come in the items' order.

    Args:
        items: What to decode (list samples, paths, ...).
        path_of: The image file of an item.
        decode: Decodes one file (e.g. ``lambda p: load_image(p, contract)``); raises
            :class:`UnreadableImageError` for a file it cannot read.
        batch_size: Items per batch.
        workers: Decoding threads (0: one per CPU core).

    Yields:
        Per batch, ``(item, result)`` pairs: the decoded value, or the
        :class:`UnreadableImageError` that file raised.
    """
    def attempt(item: T) -> D | UnreadableImageError:
        try:
            return decode(path_of(item))
        except UnreadableImageError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        pending: deque[tuple[Sequence[T], list[Future]]] = deque()
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            pending.append((chunk, [pool.submit(attempt, item) for item in chunk]))
            if len(pending) > 1:  # keep one batch decoding while the consumer works on this one
                chunk, futures = pending.popleft()
                yield [(item, future.result()) for item, future in zip(chunk, futures)]
        while pending:
            chunk, futures = pending.popleft()
            yield [(item, future.result()) for item, future in zip(chunk, futures)]


def decode_samples(dataset: Dataset, samples: Sequence[Sample], contract: InputContract, batch_size: int = 256,
                   workers: int = 0, on_unreadable: str = "error") -> Iterator[tuple[list[Sample], np.ndarray]]:
    """Listed images decoded as the network expects them, in batches, under the unreadable-image policy.

    Args:
        dataset: The data set the samples' paths are relative to.
        samples: The samples, in order.
        contract: The network's input contract.
        batch_size: Images per batch.
        workers: Decoding threads (0: one per CPU core).
        on_unreadable: ``error`` stops at the first unreadable image (naming its list
            file and line); ``skip`` logs it and leaves it out.

    Yields:
        ``(samples, images)``: the samples decoded, and their ``uint8 (B, C, H, W)``
        images (a batch whose every image was skipped is not yielded).

    Raises:
        UnreadableImageError: Under ``error``, for an unreadable image.
    """
    check_on_unreadable(on_unreadable)
    decode = partial(load_image, contract=contract)
    for pairs in decode_in_batches(samples, dataset.image_path, decode, batch_size, workers):
        kept, images = [], []
        for sample, result in pairs:
            if isinstance(result, UnreadableImageError):
                handle_unreadable(sample, result.reason, on_unreadable)
            else:
                kept.append(sample)
                images.append(result)
        if kept:
            yield kept, np.stack(images)  # B x (C, H, W) -> (B, C, H, W)


def load_samples(dataset: Dataset, samples: Sequence[Sample], contract: InputContract, on_unreadable: str = "error",
                 workers: int = 0) -> tuple[np.ndarray, np.ndarray, list[Sample]]:
    """Decode a list of samples into one array, for data sets that fit in memory.

    Every image is decoded once, by :func:`decode_samples` (in threads).

    Args:
        dataset: The data set the sample paths are relative to.
        samples: The samples, e.g. from :func:`common.lists.read_split`.
        contract: The network's input contract.
        on_unreadable: ``"error"`` or ``"skip"`` (see :func:`decode_samples`).
        workers: Decoding threads (0: one per CPU core).

    Returns:
        ``(images, labels, kept)``: ``uint8`` images ``(N, C, H, W)``, ``int64``
        labels ``(N,)`` and the samples that were decoded, in order.

    Raises:
        UnreadableImageError: On an unreadable image when ``on_unreadable="error"``,
            or when every image was skipped.
    """
    images = np.empty((len(samples), *contract.shape), dtype=np.uint8)
    kept: list[Sample] = []
    for batch, pixels in decode_samples(dataset, samples, contract, workers=workers, on_unreadable=on_unreadable):
        images[len(kept):len(kept) + len(batch)] = pixels
        kept += batch
    if samples and not kept:
        raise UnreadableImageError(f"{samples[0].source}: none of the {len(samples)} images could be decoded")
    labels = np.fromiter((s.label for s in kept), dtype=np.int64, count=len(kept))
    return images[: len(kept)], labels, kept
