"""Turning a network into an ONNX graph: probabilities and logits out, uint8 pixels in."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import torch
from torch import nn

from common.errors import UserError
from common.model_card import INPUT_NAME, OUTPUT_LOGITS, OUTPUT_PROBABILITIES
from networks import ImageClassifier

DEFAULT_OPSET = 18
"""The ONNX opset exported by default (supported by onnxruntime 1.14 and later)."""

MIN_OPSET = 18
"""The oldest opset torch's exporter writes itself; below it, the graph would go through a version converter
that fails on common operators and then keeps opset 18 (the card would record an opset the graph does not have)."""


def supported_opsets() -> range:
    """The opsets ``--opset`` accepts: :data:`MIN_OPSET` to the newest the installed ``onnx`` knows."""
    return range(MIN_OPSET, onnx.defs.onnx_opset_version() + 1)


def graph_opset(path: Path) -> int:
    """The default-domain (``ai.onnx``) opset an ONNX file's graph declares."""
    model = onnx.load(str(path), load_external_data=False)
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)


class ExportedClassifier(nn.Module):
    """The network as deployed: adds a softmax, nothing is removed.

    Input ``images``: ``uint8`` ``(B, C, H, W)``, values 0..255, resized to the input
    contract's size, channels in its colour order. Outputs ``probabilities`` (softmax)
    and ``logits``, both ``(B, num_classes)``. Normalisation is the network's own.

    Args:
        network: The trained network, in eval mode.
    """

    def __init__(self, network: ImageClassifier):
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, H, W)`` uint8 -> (probabilities, logits), each ``(B, num_classes)``."""
        logits = self.network(images)
        return torch.softmax(logits, dim=1), logits


def to_onnx(module: ExportedClassifier, path: Path, opset: int = DEFAULT_OPSET) -> None:
    """Export with torch's current (dynamo-based) exporter, dynamic batch axis.

    Args:
        module: The module to export, in eval mode.
        path: The ``.onnx`` file to write.
        opset: ONNX opset version.

    Raises:
        UserError: When the exporter cannot export the network at this opset.
    """
    contract = module.network.config.input
    example = torch.zeros(2, *contract.shape, dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1)
    quiet = logging.getLogger("torch.onnx")
    previous = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter's notes about optional packages are noise here
    try:
        program = torch.onnx.export(
            module, (example,), None, dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_PROBABILITIES, OUTPUT_LOGITS], dynamic_shapes={"images": {0: batch}},
            verbose=False,
        )
    except Exception as exc:  # the exporter raises many types; all mean "cannot export this"
        raise UserError(f"torch.onnx.export failed at opset {opset}: {str(exc).splitlines()[0]}") from exc
    finally:
        quiet.setLevel(previous)
    program.save(str(path))


def check_onnx(path: Path) -> onnx.ModelProto:
    """Run the full ``onnx.checker`` (with shape inference) and return the model.

    Raises:
        UserError: When the checker finds the model invalid.
    """
    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise UserError(f"onnx.checker rejected the exported model: {str(exc).splitlines()[0]}") from None
    return model
