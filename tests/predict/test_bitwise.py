"""The same file gives bitwise the same probabilities whatever batch it travels in, and in every stage.

Evaluation, the ``predict`` command and :class:`predict.Classifier` batch differently
(another list, another order, another batch size). That is only safe when a row's
output depends on its own image alone: checked here on the CPU provider, across batch
sizes, neighbours, positions and thread counts. (The end-to-end comparison with
``evaluate`` is ``test_predict.py``; ``bench predict`` measures nothing of this.)
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from common.onnx_model import open_model
from common.results import read_evaluation_record
from predict import Classifier


def run(model, images: np.ndarray, batch: int) -> np.ndarray:
    """Probabilities of ``images`` fed in consecutive batches of ``batch``."""
    return np.concatenate([model.session.run(["probabilities"], {"images": images[i:i + batch]})[0]
                           for i in range(0, len(images), batch)])


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_a_rows_probabilities_do_not_depend_on_its_batch(models, threads):
    model = open_model(models.model, threads)
    rng = np.random.default_rng(threads)
    images = rng.integers(0, 256, (300, *model.contract.shape), dtype=np.uint8)  # (N, C, H, W)
    whole = run(model, images, 300)
    for batch in (1, 7, 64, 256):
        assert np.array_equal(run(model, images, batch), whole), batch
    shifted = run(model, images[5:], 64)  # other neighbours, other positions
    assert np.array_equal(shifted, whole[5:])
    others = images.copy()
    others[1:] = rng.integers(0, 256, others[1:].shape, dtype=np.uint8)
    assert np.array_equal(run(model, others, 300)[0], whole[0])
    reference = open_model(models.model, 0)
    assert np.array_equal(run(reference, images, 256), whole)


def test_the_api_gives_the_same_bits_one_by_one_and_in_batches(models, mixed):
    paths = sorted((mixed / "raw" / "2").rglob("*.*"))
    together = Classifier.load(models.model, batch_size=256).predict(paths)
    alone = [Classifier.load(models.model, batch_size=1, workers=1).predict(p)[0] for p in paths[:6]]
    assert all(np.array_equal(a.probabilities, b.probabilities) for a, b in zip(alone, together))


@pytest.mark.slow
def test_an_evaluation_records_the_sha256_of_the_model_it_measured(models, evaluation):
    record = read_evaluation_record(evaluation)
    assert record.model_sha256 == hashlib.sha256(models.model.read_bytes()).hexdigest()
    assert json.loads((evaluation / "evaluation.json").read_text())["model_sha256"] == record.model_sha256
