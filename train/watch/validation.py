"""One validation pass, tallied: the confusion matrix, per-class scores, the images the model gets most wrong.

:class:`ValidationTally` adds each batch on the device (no synchronisation per
batch); :meth:`ValidationTally.finish` sums the confusion matrix over the processes
under torchrun (the "most wrong" images are the main process's share).
:func:`per_class_scores` is the pure part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from train.process.distributed import Processes, all_reduce_sum


@dataclass(frozen=True)
class WorstImages:
    """The validation images predicted wrong with the highest confidence, most confident first.

    Attributes:
        images: ``(N, C, H, W)`` uint8, as the network took them (before its normalisation).
        true: ``(N,)`` true labels.
        predicted: ``(N,)`` predicted labels.
        confidence: ``(N,)`` probability of the predicted label.
    """

    images: np.ndarray
    true: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray

    def captions(self, class_names: Sequence[str]) -> list[list[str]]:
        """``["true: <name>", "pred: <name> 0.97"]`` per image."""
        return [[f"true: {class_names[t]}", f"pred: {class_names[p]} {c:.2f}"]
                for t, p, c in zip(self.true, self.predicted, self.confidence)]


class ValidationTally:
    """Confusion matrix and the ``keep`` most confidently wrong images of one validation pass.

    Args:
        num_classes: Classes K.
        keep: Images to keep for the "most wrong" grid (0: none).
        device: Where the batches are.
    """

    def __init__(self, num_classes: int, keep: int, device: torch.device):
        self.num_classes, self.keep, self.device = num_classes, keep, device
        self.reset()

    def reset(self) -> None:
        """Start a new pass."""
        self.confusion = torch.zeros(self.num_classes * self.num_classes, dtype=torch.int64, device=self.device)
        self.pool: dict[str, torch.Tensor] | None = None
        self.result: np.ndarray | None = None

    def add(self, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> None:
        """One batch: images ``(B, C, H, W)``, labels ``(B,)``, logits ``(B, K)``."""
        predicted = logits.argmax(dim=1)
        self.confusion += torch.bincount(labels * self.num_classes + predicted,
                                         minlength=self.num_classes * self.num_classes)  # (B,) -> (K*K,)
        if self.keep == 0:
            return
        confidence = torch.softmax(logits.float(), dim=1).gather(1, predicted[:, None])[:, 0]  # (B, 1) -> (B,)
        score = torch.where(predicted != labels, confidence, torch.full_like(confidence, -1.0))
        batch = {"images": images, "true": labels, "predicted": predicted, "confidence": confidence, "score": score}
        if self.pool is not None:
            batch = {key: torch.cat([self.pool[key], value]) for key, value in batch.items()}
        top = torch.topk(batch["score"], min(self.keep, len(batch["score"]))).indices
        self.pool = {key: value.index_select(0, top) for key, value in batch.items()}

    def finish(self, processes: Processes) -> np.ndarray:
        """The pass's confusion matrix ``(K, K)`` (rows: true, columns: predicted), summed over the processes."""
        total = all_reduce_sum(self.confusion.double(), processes)
        self.result = total.long().cpu().numpy().reshape(self.num_classes, self.num_classes)  # (K*K,) -> (K, K)
        return self.result

    def worst(self) -> WorstImages | None:
        """The most confidently wrong images of this process's share (None when it got everything right)."""
        if self.pool is None:
            return None
        wrong = (self.pool["score"] >= 0).cpu()
        if not bool(wrong.any()):
            return None
        pick = {key: value.cpu()[wrong].numpy() for key, value in self.pool.items()}
        return WorstImages(pick["images"], pick["true"], pick["predicted"], pick["confidence"])


def per_class_scores(confusion: np.ndarray) -> dict[str, Any]:
    """Precision, recall, F1 and support per class from a confusion matrix (rows: true, columns: predicted).

    A class with no true samples has recall and F1 ``nan`` and is left out of ``macro_f1``
    (the rule evaluation uses); a class never predicted has precision 0.

    Returns:
        ``{"precision", "recall", "f1", "support"}`` arrays ``(K,)`` and ``"macro_f1"`` (a float, nan without support).
    """
    matrix = np.asarray(confusion, dtype=np.float64)
    hits = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.full_like(hits, np.nan), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    f1[support == 0] = np.nan
    macro = float(np.nanmean(f1)) if (support > 0).any() else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64),
            "macro_f1": macro}
