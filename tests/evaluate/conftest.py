"""Models for the evaluation tests, built without torch (the evaluation machine has none).

A nearest-class-mean classifier on the bundled digits, written as an ONNX graph with
a model card: a real model that makes real mistakes, in a few lines of numpy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from common.contract import InputContract
from common.files import canonical_hash
from common.images import load_samples
from common.lists import load_dataset, read_split
from common.model_card import CARD_KEY, CardNetwork, CardSource, ModelCard

CONTRACT = InputContract("L", 8, 8, "nearest", (0.0,), (1.0,))


def card_for(name: str, class_names: list[str], contract: InputContract) -> dict:
    """A model card's JSON layout, as the deployment stage writes it."""
    config = {"name": "centroids", "version": 1, "arch": {"name": "nearest_class_mean", "params": {}},
              "num_classes": len(class_names), "input": contract.to_dict()}
    network = CardNetwork(name="centroids", arch="nearest_class_mean", hash=canonical_hash(config), config=config)
    card = ModelCard(name=name, created="2026-11-24T00:00:00+00:00", class_names=tuple(class_names),
                     contract=contract, network=network, source=CardSource(run="test-run"),
                     export={"quantization": None})
    return card.to_dict()


def centroid_model(path: Path, digits_root: Path, train_images: int | None = None, temperature: float = 3000.0,
                   card: dict | None = None, channels: int = 1) -> Path:
    """Write a nearest-class-mean ONNX classifier of the digits with its card.

    logits_c = -||x - mu_c||^2 / T, written as x . (2 mu_c / T) - ||mu_c||^2 / T.
    """
    dataset = load_dataset(digits_root)
    samples = read_split(dataset, "train")[:train_images]
    images, labels, _ = load_samples(dataset, samples, CONTRACT)
    x = images.reshape(len(images), -1).astype(np.float64)  # (N, 1, 8, 8) -> (N, 64)
    means = np.stack([x[labels == c].mean(axis=0) for c in range(10)])  # (10, 64)
    features = 64 * channels
    weight = np.tile(2 * means.T / temperature, (channels, 1)) / channels  # (64 * channels, 10)
    bias = -(means ** 2).sum(axis=1) / temperature
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["images"], ["pixels"], to=TensorProto.FLOAT),
            helper.make_node("Reshape", ["pixels", "flat_shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "weight"], ["scaled"]),
            helper.make_node("Add", ["scaled", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "centroids",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", channels, 8, 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=[numpy_helper.from_array(np.array([-1, features], dtype=np.int64), "flat_shape"),
                     numpy_helper.from_array(weight.astype(np.float32), "weight"),
                     numpy_helper.from_array(bias.astype(np.float32), "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    entry = model.metadata_props.add()
    entry.key = CARD_KEY
    entry.value = json.dumps(card if card is not None else card_for(path.stem, list(dataset.class_names), CONTRACT))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def make_model(tmp_path: Path, digits_root: Path) -> Callable[..., Path]:
    """``make_model(name, **kwargs)``: a centroid model in a temporary folder."""

    def make(name: str = "centroids", **kwargs) -> Path:
        return centroid_model(tmp_path / f"{name}.onnx", digits_root, **kwargs)

    return make
