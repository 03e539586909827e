"""A deployed model in Python, without torch: :class:`Classifier`.

::

    from predict import Classifier, Thresholds

    classifier = Classifier.load("model/flowers.onnx")      # card read, sidecar checked, CPU provider
    for result in classifier.predict(["new/1.jpg", Image.open("new/2.png"), pixels]):
        print(result.source, result.decision, result.top[0].probability)

It opens the model as every stage does (:func:`common.onnx_model.open_model`: the
sha256 sidecar, the card's input contract, the graph against the card), decodes
through the one batch decoder (:func:`common.images.decode_in_batches` with
:func:`common.images.load_image`) and runs the same onnxruntime session settings, so
``predict``, ``evaluate`` and this class give bitwise the same probabilities for the
same file. The command ``pipenv run predict`` runs its batches through
:meth:`Classifier.batches`.

Images: a path (``str`` or ``os.PathLike``), a Pillow image (its EXIF orientation is
applied, as for files; ``Image.open(path)`` gives what ``path`` gives), or a ``uint8``
numpy array in ``(H, W)`` (gray), ``(H, W, 3)`` (R, G, B) or ``(H, W, 4)`` (RGBA)
layout, as ``numpy.asarray(pil_image)`` gives. Each is converted and resized by the
model's input contract.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from common.contract import InputContract
from common.errors import UserError
from common.images import (
    UnreadableImageError,
    apply_unreadable_policy,
    check_on_unreadable,
    decode_in_batches,
    load_image,
    prepare_image,
)
from common.onnx_model import DEFAULT_PROVIDERS, Model, newest_model, open_model, predict_batches
from common.paths import display_path
from predict.decisions import ABSTAIN, Thresholds, decide

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]
"""What :meth:`Classifier.predict` takes: a path, a Pillow image or a ``uint8`` array."""

SKIP_HINT = ("fix or remove the file, or leave unreadable images out with --on-unreadable skip "
             "(Python: on_unreadable='skip'); they are listed in unreadable.csv")
"""The advice given with an unreadable image under the ``error`` policy."""

DEFAULT_TOP_K = 5
"""Classes per prediction unless asked otherwise (or the class count, when smaller)."""


@dataclass(frozen=True)
class ClassScore:
    """One class and its probability.

    Attributes:
        name: The class name.
        label: Its index (the model's output column).
        probability: Its probability.
    """

    name: str
    label: int
    probability: float


@dataclass(frozen=True)
class Prediction:
    """What the model says about one image.

    Attributes:
        source: The image: its path, or ``<image i>`` for an image given in memory.
        decision: The decided class name, or :data:`predict.decisions.ABSTAIN`.
        label: The decided class index, or None when abstaining.
        top: The ``top_k`` most probable classes, highest first (on ties the lower index first).
        probabilities: Every class's probability ``(K,)`` float32, in class-index order.
        threshold: The top-1 class's threshold (None: no thresholds, or never decided).
    """

    source: str
    decision: str
    label: int | None
    top: tuple[ClassScore, ...]
    probabilities: np.ndarray
    threshold: float | None = None

    @property
    def decided(self) -> bool:
        """Whether the top-1 class was decided (not abstained)."""
        return self.label is not None

    @property
    def margin(self) -> float:
        """Top-1 probability minus the runner-up's (1 for a single class): small means uncertain."""
        ordered = np.sort(self.probabilities)[::-1]
        return float(ordered[0] - ordered[1]) if len(ordered) > 1 else 1.0


@dataclass
class Batch:
    """One batch through the model.

    Attributes:
        items: The items that decoded, in input order.
        probabilities: Their class probabilities ``(B, K)`` float32.
        unreadable: ``(item, reason)`` of each item skipped as unreadable.
    """

    items: list[Any]
    probabilities: np.ndarray
    unreadable: list[tuple[Any, str]]


class Classifier:
    """A deployed ONNX model with its preprocessing, batching and decision rule.

    Args:
        model: The opened model (:func:`common.onnx_model.open_model`).
        thresholds: The decision rule's thresholds (None: every top-1 class is decided).
        top_k: Classes per prediction (default: 5, or the class count when smaller).
        batch_size: Images per inference call.
        workers: Image-decoding threads.

    Raises:
        UserError: For thresholds of another model or other classes, or a ``top_k``
            outside 1..classes.
    """

    def __init__(self, model: Model, thresholds: Thresholds | None = None, top_k: int | None = None,
                 batch_size: int = 256, workers: int = 4):
        classes = len(model.class_names)
        self.top_k = min(DEFAULT_TOP_K, classes) if top_k is None else top_k
        if not 1 <= self.top_k <= classes:
            raise UserError(f"--top-k {self.top_k}: the model has {classes} classes; give 1..{classes}")
        if batch_size < 1 or workers < 1:
            raise UserError("--batch-size and --workers must be at least 1")
        if thresholds is not None:
            thresholds.check_model(model.class_names, model.sha256, display_path(model.path))
        self.model, self.thresholds, self.batch_size, self.workers = model, thresholds, batch_size, workers
        self._threshold_array = thresholds.array() if thresholds is not None else None

    @classmethod
    def load(cls, path: Path | str | None = None, thresholds: Thresholds | None = None, top_k: int | None = None,
             providers: Sequence[str] = DEFAULT_PROVIDERS, threads: int = 0, batch_size: int = 256,
             workers: int = 4) -> Classifier:
        """Open a model (default: the newest in ``model/``) and check its card, sidecar and graph.

        Args:
            path: The ``.onnx`` file.
            thresholds: See :class:`Classifier`.
            top_k: See :class:`Classifier`.
            providers: onnxruntime execution providers, most preferred first.
            threads: onnxruntime intra-op threads (0: one per core).
            batch_size: Images per inference call.
            workers: Image-decoding threads.

        Raises:
            UserError: As :func:`common.onnx_model.open_model` and :class:`Classifier`.
        """
        model = open_model(Path(path) if path is not None else newest_model(), threads, tuple(providers))
        return cls(model, thresholds, top_k, batch_size, workers)

    @property
    def class_names(self) -> list[str]:
        """The model's classes; index = output column."""
        return self.model.class_names

    @property
    def contract(self) -> InputContract:
        """The model's input contract (from its card)."""
        return self.model.contract

    def predict(self, images: ImageInput | Sequence[ImageInput], on_unreadable: str = "error") -> list[Prediction]:
        """Predict one image or a sequence of them.

        Args:
            images: Paths, Pillow images or ``uint8`` arrays (see the module docstring), or one of them.
            on_unreadable: ``error`` raises for an image that cannot be decoded;
                ``skip`` logs it and leaves it out of the results.

        Returns:
            One :class:`Prediction` per image decoded, in input order.

        Raises:
            UserError: For an unreadable image (under ``error``), or an array that is
                not ``uint8`` in ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` layout.
        """
        single = isinstance(images, (str, os.PathLike, Image.Image)) or (
            isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype == np.uint8)
        items = [images] if single else list(images)
        names = [_source_name(item, index) for index, item in enumerate(items)]
        results = []
        for batch in self.batches(range(len(items)), lambda i: self._prepare(items[i], names[i]), on_unreadable,
                                  lambda i: names[i]):
            results += self.to_predictions([names[i] for i in batch.items], batch.probabilities)
        return results

    def batches(self, items: Sequence[Any], decode: Callable[[Any], np.ndarray] | None = None,
                on_unreadable: str = "error", name_of: Callable[[Any], str] = str) -> Iterator[Batch]:
        """Decode items and run the model on them, one batch at a time (memory bounded by the batch).

        Args:
            items: What to predict (paths, unless ``decode`` says otherwise), in order.
            decode: Turns an item into the network input ``(C, H, W)`` uint8 (default:
                :func:`common.images.load_image` of the path).
            on_unreadable: ``error`` or ``skip`` (the one unreadable-image policy).
            name_of: How to name an item in messages.

        Yields:
            :class:`Batch` per batch of ``batch_size`` items, in order.

        Raises:
            UnreadableImageError: Under ``error``, for the first unreadable item.
        """
        check_on_unreadable(on_unreadable, "--on-unreadable")
        contract = self.contract
        load = decode or (lambda item: load_image(Path(item), contract))
        for pairs in decode_in_batches(items, lambda item: item, load, self.batch_size, self.workers):
            kept, images, unreadable = [], [], []
            for item, result in pairs:
                if isinstance(result, UnreadableImageError):
                    apply_unreadable_policy(f"{name_of(item)}: cannot decode ({result.reason})", result.reason,
                                            on_unreadable, SKIP_HINT)
                    unreadable.append((item, result.reason))
                else:
                    kept.append(item)
                    images.append(result)
            probabilities = (predict_batches(self.model, [np.stack(images)]) if images  # B x (C, H, W) -> (B, C, H, W)
                             else np.empty((0, len(self.class_names)), dtype=np.float32))
            self._check_probabilities(probabilities, [name_of(item) for item in kept])
            yield Batch(kept, probabilities, unreadable)

    def _check_probabilities(self, probabilities: np.ndarray, names: list[str]) -> None:
        """Refuse outputs that are not probabilities (the card promises a softmax): the command and the API alike.

        Raises:
            UserError: Naming the model and the first image concerned.
        """
        if not probabilities.size or (probabilities.min() >= 0 and probabilities.max() <= 1):  # NaN fails both
            return
        bad = ~np.isfinite(probabilities).all(axis=1) | (probabilities < 0).any(axis=1) | (probabilities > 1).any(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise UserError(f"{display_path(self.model.path)}: its outputs for {names[first]} are not probabilities "
                            f"in [0, 1] ({probabilities[first].tolist()[:5]}...); its card promises a softmax")

    def top(self, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``top_k`` classes of each row, highest first, the lower index first on ties.

        Returns:
            ``(labels, values)``, each ``(B, top_k)``.
        """
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :self.top_k]
        return order, np.take_along_axis(probabilities, order, axis=1)

    def decide(self, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The top-1 class of each row and whether it is decided, each ``(B,)`` (:func:`predict.decisions.decide`)."""
        return decide(probabilities, self._threshold_array)

    def to_predictions(self, sources: list[str], probabilities: np.ndarray) -> list[Prediction]:
        """Typed results for a batch's sources and probabilities ``(B, K)``."""
        names = self.class_names
        labels, values = self.top(probabilities)
        top1, decided = self.decide(probabilities)
        results = []
        for row, source in enumerate(sources):
            best = int(top1[row])
            threshold = self.thresholds.values[best] if self.thresholds is not None else None
            top = tuple(ClassScore(names[int(c)], int(c), float(v)) for c, v in zip(labels[row], values[row]))
            results.append(Prediction(source, names[best] if decided[row] else ABSTAIN,
                                      best if decided[row] else None, top, probabilities[row].copy(), threshold))
        return results

    def _prepare(self, item: ImageInput, name: str) -> np.ndarray:
        """One in-memory or on-disk image as the network input ``(C, H, W)``."""
        if isinstance(item, (str, os.PathLike)):
            return load_image(Path(item), self.contract)
        if isinstance(item, Image.Image):
            if item.width == 0 or item.height == 0:
                raise UserError(f"{name}: a PIL image of {item.width} x {item.height} pixels has nothing to predict")
            return prepare_image(item, self.contract, name)
        if isinstance(item, np.ndarray):
            return prepare_image(_array_image(item, name), self.contract, name)
        raise UserError(f"{name}: {type(item).__name__} is not an image (give a path, a PIL image or a uint8 array)")


def _array_image(array: np.ndarray, name: str) -> Image.Image:
    """A ``uint8`` ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` array as a Pillow image."""
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))
    if array.dtype != np.uint8 or not shape_ok or 0 in array.shape:
        raise UserError(f"{name}: an array image must be uint8 with shape (H, W), (H, W, 3) or (H, W, 4) (channels "
                        f"last, R, G, B order); got {array.dtype} {array.shape}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]  # (H, W, 1) -> (H, W)
    return Image.fromarray(np.ascontiguousarray(array))


def _source_name(item: Any, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    filename = getattr(item, "filename", "") if isinstance(item, Image.Image) else ""
    return filename or f"<image {index}>"
