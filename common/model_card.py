"""The model card: what an exported ONNX model says about itself.

The card is versioned JSON stored in the ONNX model's ``metadata_props`` under
``CARD_KEY`` (and, human-readable, as ``model/<name>.json`` beside it). Deployment
writes it; evaluation reads it and refuses a model without one instead of guessing
the preprocessing. Reading never evaluates code: it is ``json.loads``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.contract import InputContract
from common.errors import UserError
from common.paths import display_path

CARD_KEY = "imagepipe.model_card"
"""The ``metadata_props`` key holding the card's JSON."""

CARD_SCHEMA_VERSION = 1
"""The card layout this code writes and reads."""

INPUT_NAME = "images"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_LOGITS = "logits"


def parse_card(metadata: dict[str, str], source: str) -> dict[str, Any]:
    """The card from a model's metadata map, checked for what the stages rely on.

    Args:
        metadata: The model's ``metadata_props`` as a dict.
        source: The model file, for messages.

    Raises:
        UserError: When the card is missing, not JSON, of an unknown schema version,
            or lacks class names, the input contract or the output names.
    """
    if CARD_KEY not in metadata:
        raise UserError(
            f"{source}: no '{CARD_KEY}' in the model's metadata, so its input contract (colour mode, size, "
            "interpolation, normalisation) is unknown; export it with `pipenv run export`, this project does "
            "not guess preprocessing"
        )
    try:
        card = json.loads(metadata[CARD_KEY])
    except ValueError as exc:
        raise UserError(f"{source}: the model card is not valid JSON ({exc})") from None
    if not isinstance(card, dict) or card.get("schema_version") != CARD_SCHEMA_VERSION:
        version = card.get("schema_version") if isinstance(card, dict) else None
        raise UserError(f"{source}: model card schema_version {version!r}; this code reads {CARD_SCHEMA_VERSION}")
    problems = []
    names = card.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        problems.append("class_names: expected a non-empty list of strings")
    if not isinstance(card.get("input"), dict) or "contract" not in card["input"]:
        problems.append("input.contract: missing")
    outputs = card.get("outputs")
    if not isinstance(outputs, dict) or OUTPUT_PROBABILITIES not in outputs:
        problems.append(f"outputs.{OUTPUT_PROBABILITIES}: missing")
    if problems:
        raise UserError(f"{source}: incomplete model card: " + "; ".join(problems))
    contract_of(card, source)  # validates the contract
    return card


def contract_of(card: dict[str, Any], source: str) -> InputContract:
    """The input contract a model card states."""
    return InputContract.from_dict(card["input"]["contract"], source=f"{source}: input.contract")


def read_model_card(path: Path) -> dict[str, Any]:
    """Read the card inside an ONNX model file (with onnxruntime, which every model box has).

    Raises:
        UserError: When the file is missing or not a loadable ONNX model, or its card is unusable.
    """
    import onnxruntime

    shown = display_path(path)
    if not Path(path).is_file():
        raise UserError(f"{shown}: model not found")
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise UserError(f"{shown}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
    return parse_card(dict(session.get_modelmeta().custom_metadata_map), shown)
