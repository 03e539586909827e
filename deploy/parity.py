"""The parity gate: does the ONNX model compute what the PyTorch network computes?"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.lists import Sample
from common.model_card import INPUT_NAME, OUTPUT_PROBABILITIES

Predictor = Callable[[np.ndarray], np.ndarray]
"""uint8 images ``(B, C, H, W)`` -> probabilities ``(B, num_classes)``."""


@dataclass
class ParityReport:
    """Agreement of a candidate model with a reference on real images.

    Attributes:
        reference: What the candidate is compared with (e.g. ``pytorch``).
        candidate: What is checked (e.g. ``onnxruntime fp32``).
        images: Number of images compared.
        source: The list file they came from.
        max_abs_diff: Largest absolute difference of any class probability.
        mean_abs_diff: Mean absolute difference over all images and classes.
        top1_agreement: Fraction of images whose predicted class is the same.
        tolerance: ``max_abs_diff`` allowed.
        min_top1_agreement: ``top1_agreement`` required.
        passed: Whether both limits hold.
        worst: The samples with the largest differences (path, label, both predictions, difference).
        reference_accuracy: Reference top-1 accuracy against the labels.
        candidate_accuracy: Candidate top-1 accuracy against the labels.
    """

    reference: str
    candidate: str
    images: int
    source: str
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    tolerance: float
    min_top1_agreement: float
    passed: bool
    reference_accuracy: float
    candidate_accuracy: float
    worst: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return asdict(self)

    def summary(self) -> str:
        """One line for the console."""
        verdict = "passed" if self.passed else "FAILED"
        limit = f" (limit {self.tolerance:.0e})" if self.tolerance < 1 else ""
        required = f" (required {self.min_top1_agreement:.2%})" if self.min_top1_agreement > 0 else ""
        return (f"parity {self.candidate} vs {self.reference} on {self.images} images: max |dp| "
                f"{self.max_abs_diff:.2e}{limit}, mean |dp| {self.mean_abs_diff:.2e}, top-1 "
                f"agreement {self.top1_agreement:.2%}{required}: {verdict}")


def onnx_predictor(path: Path, threads: int = 0) -> Predictor:
    """Probabilities from an ONNX model through onnxruntime's CPU provider."""
    import onnxruntime

    from common.onnx_model import session_options

    session = onnxruntime.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    return lambda images: session.run([OUTPUT_PROBABILITIES], {INPUT_NAME: images})[0]


def measure_parity(reference: Predictor, candidate: Predictor, images: np.ndarray, labels: np.ndarray,
            samples: Sequence[Sample], names: tuple[str, str], source: str, tolerance: float,
            min_top1_agreement: float, batch_size: int = 256, worst: int = 5) -> ParityReport:
    """Run both predictors on the same images and measure how far apart they are.

    Args:
        reference: The trusted predictor.
        candidate: The predictor under test.
        images: ``uint8`` ``(N, C, H, W)``.
        labels: True labels ``(N,)``.
        samples: The samples the images came from (for the worst-case list).
        names: ``(reference name, candidate name)``.
        source: The list file the images came from.
        tolerance: Largest allowed absolute probability difference.
        min_top1_agreement: Smallest allowed fraction of equal top-1 predictions.
        batch_size: Images per call.
        worst: How many worst samples to list.
    """
    ref = np.concatenate([reference(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    cand = np.concatenate([candidate(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    diff = np.abs(ref.astype(np.float64) - cand.astype(np.float64))  # (N, K)
    per_sample = diff.max(axis=1)
    ref_top, cand_top = ref.argmax(axis=1), cand.argmax(axis=1)
    agreement = float((ref_top == cand_top).mean())
    order = np.argsort(-per_sample, kind="stable")[:worst]
    report = ParityReport(
        reference=names[0], candidate=names[1], images=len(images), source=source,
        max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()), top1_agreement=agreement,
        tolerance=tolerance, min_top1_agreement=min_top1_agreement,
        passed=bool(diff.max() <= tolerance and agreement >= min_top1_agreement),
        reference_accuracy=float((ref_top == labels).mean()), candidate_accuracy=float((cand_top == labels).mean()),
        worst=[{"path": samples[i].path, "label": int(labels[i]), "reference_top1": int(ref_top[i]),
                "candidate_top1": int(cand_top[i]), "max_abs_diff": float(per_sample[i])} for i in order],
    )
    return report
