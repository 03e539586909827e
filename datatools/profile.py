"""What a data set's files are like, and the shortcuts and mismatches that follow from it.

A network learns whatever separates the classes. When every image of one class is
a PNG and the others are JPEGs (or grayscale among colour, or one size among many),
it can learn the file format instead of the content, and fail on new images. This
module reads image *headers* (``PIL.Image.open`` decodes nothing), counts colour
modes, formats and sizes per class, and says:

- which class's files all share a colour mode, format or size that is rare in the
  other classes (:meth:`FileProfile.shortcut_warnings`);
- when a contract's colour mode does not fit the data: grayscale on colour files
  drops colour, colour on all-grayscale files triples the input for nothing
  (:meth:`FileProfile.contract_warning`);
- when a split is too small for class-balance figures to mean anything
  (:func:`tiny_split_note`).

:class:`ChannelStats` streams per-channel mean and standard deviation over decoded
images, for the input contract. ``inspect-data`` uses all of it; training logs
:func:`quick_check` in one line at its start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from common.lists import Dataset, Sample

GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
"""Pillow modes that hold no colour; every other mode (RGB, RGBA, P, CMYK, ...) counts as colour."""

ATTRIBUTES = ("colour mode", "format", "size")
"""What :class:`FileProfile` counts per class."""

MIN_FILES_FOR_SHORTCUT = 5
"""A class needs at least this many files before "all of them share X" is worth saying."""

RARE_ELSEWHERE = 0.5
"""A shared value is a shortcut when fewer than this share of the other classes' files have it."""

TINY_PER_CLASS = 10
"""Below this many images per class on average, a split's class balance is noise."""

QUICK_CHECK_FILES = 200
"""Headers the training-start check reads at most."""


@dataclass
class FileProfile:
    """Colour modes, formats and sizes of image files, counted per class.

    Args:
        class_names: The data set's class names; index = label.

    Attributes:
        class_names: As given.
        counts: ``attribute -> per-class Counter of values`` (see :data:`ATTRIBUTES`).
        files: Files counted.
    """

    class_names: Sequence[str]
    counts: dict[str, list[Counter]] = field(init=False)
    files: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.counts = {attribute: [Counter() for _ in self.class_names] for attribute in ATTRIBUTES}

    def add(self, label: int, mode: str, format: str | None, size: tuple[int, int]) -> None:
        """Count one file (from its header: Pillow's ``mode``, ``format`` and ``size`` as width, height)."""
        for attribute, value in zip(ATTRIBUTES, (mode, format or "unknown", f"{size[0]}x{size[1]}")):
            self.counts[attribute][label][value] += 1
        self.files += 1

    def colour_share(self) -> float:
        """Share of the files in a colour mode (anything outside :data:`GRAY_MODES`)."""
        modes = sum(self.counts["colour mode"], Counter())
        total = sum(modes.values())
        return sum(n for mode, n in modes.items() if mode not in GRAY_MODES) / total if total else 0.0

    def auto_color_mode(self) -> str:
        """``RGB`` when any file is in colour, else ``L``: colour is never dropped silently."""
        return "RGB" if self.colour_share() > 0 else "L"

    def shortcut_warnings(self) -> list[str]:
        """A sentence for each class whose files all share a colour mode, format or size rare elsewhere."""
        warnings = []
        for attribute in ATTRIBUTES:
            per_class = self.counts[attribute]
            everything = sum(per_class, Counter())
            for label, counter in enumerate(per_class):
                files = sum(counter.values())
                if len(counter) != 1 or files < MIN_FILES_FOR_SHORTCUT:
                    continue
                (value,) = counter
                others = sum(everything.values()) - files
                if not others:
                    continue
                share = (everything[value] - files) / others
                if share < RARE_ELSEWHERE:
                    warnings.append(
                        f"shortcut: all {files} files of class {self.class_names[label]!r} have {attribute} {value}, "
                        f"against {share:.0%} of the other classes' files; a network can learn the {attribute} "
                        f"instead of the content (make the {attribute} alike across classes)")
        return warnings

    def contract_warning(self, color_mode: str) -> str | None:
        """A sentence when a contract's colour mode does not fit these files, else None."""
        share = self.colour_share()
        if color_mode == "L" and share > 0:
            return (f"grayscale contract (color_mode L) on colour data: {share:.0%} of the files are in colour, "
                    "which is dropped when they are converted to L (use color_mode RGB to keep it)")
        if color_mode == "RGB" and self.files and share == 0:
            return ("colour contract (color_mode RGB) on grayscale data: every file is grayscale, so the three "
                    "channels are copies (color_mode L gives the same with a third of the input)")
        return None

    def to_dict(self) -> dict[str, dict[str, dict[str, int]]]:
        """``class -> attribute -> value -> files``, most common values first."""
        return {name: {attribute: dict(self.counts[attribute][label].most_common()) for attribute in ATTRIBUTES}
                for label, name in enumerate(self.class_names)}


def read_header(path: str) -> tuple[str, str | None, tuple[int, int]] | None:
    """``(mode, format, (width, height))`` from an image file's header, or None when the stages cannot open it
    (:func:`common.images.open_image`: a decompression bomb is unreadable too)."""
    from common.images import DECODE_ERRORS, open_image

    try:
        with open_image(path) as image:
            return image.mode, image.format, image.size
    except DECODE_ERRORS:
        return None


def tiny_split_note(split: str, images: int, classes: int) -> str | None:
    """A note instead of imbalance figures when a split has fewer than :data:`TINY_PER_CLASS` images per class."""
    if not classes or images >= TINY_PER_CLASS * classes:
        return None
    return (f"{split}: {images} images for {classes} classes ({images / classes:.1f} per class): too few for class "
            "balance figures to mean anything, so none are given")


def quick_check(dataset: Dataset, samples: Sequence[Sample], color_mode: str, split: str = "train",
                limit: int = QUICK_CHECK_FILES) -> str:
    """One line on a bounded sample of file headers: shortcuts and a colour-mode mismatch, or that there are none.

    Args:
        dataset: The data set.
        samples: The split's samples.
        color_mode: The network contract's colour mode.
        split: The split's name, for the line.
        limit: Headers to read at most (a seeded random choice when there are more samples).

    Returns:
        The line, e.g. ``data check (headers of 200 of 1257 train images): no shortcut ...``.
    """
    chosen = samples
    if len(samples) > limit:
        picks = np.random.default_rng(0).choice(len(samples), size=limit, replace=False)
        chosen = [samples[i] for i in sorted(picks)]
    profile = FileProfile(dataset.class_names)
    for sample in chosen:
        header = read_header(str(dataset.image_path(sample)))
        if header is not None:
            profile.add(sample.label, *header)
    found = profile.shortcut_warnings() + [w for w in [profile.contract_warning(color_mode)] if w]
    head = f"data check (headers of {profile.files} of {len(samples)} {split} images)"
    if not found:
        return f"{head}: no shortcut (colour mode, format or size of one class) and no colour-mode mismatch"
    return (f"{head}: {len(found)} warning(s): " + "; ".join(found)
            + f"; details: pipenv run inspect-data --dataset {dataset.root.name}")


class ChannelStats:
    """Per-channel mean and standard deviation, streamed over images of any number and size.

    Each image's channel means and sums of squared deviations are merged into the
    running totals (Chan et al.'s pairwise update), in float64, so the result
    matches a computation over all pixels at once without holding them.

    Args:
        channels: Number of channels.
    """

    def __init__(self, channels: int):
        self.pixels = 0
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)

    def add(self, image: np.ndarray) -> None:
        """Add one ``uint8`` image ``(C, H, W)``; values are taken on the 0..1 scale."""
        values = image.reshape(image.shape[0], -1).astype(np.float64) / 255.0  # (C, H, W) -> (C, H*W)
        count = values.shape[1]
        mean = values.mean(axis=1)
        m2 = ((values - mean[:, None]) ** 2).sum(axis=1)
        total = self.pixels + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.pixels * count / total)
        self.pixels = total

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation per channel (0 before any image)."""
        return np.sqrt(self.m2 / self.pixels) if self.pixels else np.zeros_like(self.m2)

    def rounded(self, digits: int = 4) -> tuple[list[float], list[float]]:
        """``(mean, std)`` per channel, rounded for a config file; a zero std becomes the smallest positive value."""
        smallest = 10.0**-digits
        return [round(float(v), digits) for v in self.mean], [max(round(float(v), digits), smallest) for v in self.std]


ODD_SHARE = 0.01
"""A colour mode or file format held by fewer than this share of a data set's files makes a file odd."""

ODD_MIN_FILES = 100
"""Files a data set needs before a rare colour mode or format is worth reporting."""

ODD_SMALL = 0.25
"""A file whose shorter side is below this share of the median shorter side is odd (a thumbnail, an icon)."""


def odd_files(headers: dict[str, tuple[str, str | None, tuple[int, int]]]) -> dict[str, str]:
    """The files that stand out from the rest of a data set by their header, and why.

    A colour mode or format that fewer than :data:`ODD_SHARE` of the files have (with at
    least :data:`ODD_MIN_FILES` files), or a shorter side below :data:`ODD_SMALL` of the
    median one: often a file that got in by mistake (a CMYK scan among photos, a GIF
    icon, a thumbnail).

    Args:
        headers: ``path -> (mode, format, (width, height))`` from :func:`read_header`.

    Returns:
        ``path -> reason`` of each odd file.
    """
    if not headers:
        return {}
    modes = Counter(mode for mode, _, _ in headers.values())
    formats = Counter(format or "unknown" for _, format, _ in headers.values())
    median = float(np.median([min(size) for _, _, size in headers.values()]))
    total, odd = len(headers), {}
    for path, (mode, format, size) in headers.items():
        reasons = []
        if total >= ODD_MIN_FILES and modes[mode] < ODD_SHARE * total:
            reasons.append(f"colour mode {mode} ({modes[mode]} of {total} files)")
        if total >= ODD_MIN_FILES and formats[format or "unknown"] < ODD_SHARE * total:
            reasons.append(f"format {format or 'unknown'} ({formats[format or 'unknown']} of {total} files)")
        if min(size) < ODD_SMALL * median:
            reasons.append(f"{size[0]}x{size[1]} pixels, far smaller than most (median shorter side {median:g})")
        if reasons:
            odd[path] = "; ".join(reasons)
    return odd
