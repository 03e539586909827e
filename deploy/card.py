"""Building the model card and storing it inside the ONNX model."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import onnx

from common.files import atomic_write_text
from common.model_card import CARD_KEY, CARD_SCHEMA_VERSION, INPUT_NAME, OUTPUT_LOGITS, OUTPUT_PROBABILITIES
from networks.config import NetworkConfig

PREPROCESSING = (
    "decode with Pillow, apply the EXIF orientation, convert to input.contract.color_mode, resize to "
    "input.contract.width x input.contract.height with input.contract.interpolation (skipped when the size "
    "already matches); channels in colour-mode order (R, G, B for RGB); no normalisation (it is in the graph)"
)


def build_card(name: str, network_config: NetworkConfig, class_names: list[str], source: dict[str, Any],
               training: dict[str, Any], export: dict[str, Any], parity: dict[str, Any],
               created: str) -> dict[str, Any]:
    """The model card (schema in docs/contracts.md)."""
    contract = network_config.input
    classes = len(class_names)
    return {
        "schema_version": CARD_SCHEMA_VERSION,
        "name": name,
        "created": created,
        "class_names": list(class_names),
        "input": {
            "name": INPUT_NAME,
            "layout": "NCHW",
            "dtype": "uint8",
            "range": [0, 255],
            "shape": ["batch", *contract.shape],
            "contract": contract.to_dict(),
            "preprocessing": PREPROCESSING,
        },
        "outputs": {
            OUTPUT_PROBABILITIES: {"shape": ["batch", classes], "dtype": "float32",
                                   "meaning": "softmax class probabilities; column i is class_names[i]"},
            OUTPUT_LOGITS: {"shape": ["batch", classes], "dtype": "float32",
                            "meaning": "class scores before the softmax"},
        },
        "normalization": {"inside_graph": True, "formula": "(x / 255 - mean) / std",
                          "mean": list(contract.mean), "std": list(contract.std)},
        "network": {"name": network_config.name, "arch": network_config.arch.name, "hash": network_config.hash,
                    "config": network_config.to_dict()},
        "source": source,
        "training": training,
        "export": export,
        "parity": parity,
    }


def package_versions() -> dict[str, str]:
    """Versions of the packages that produced the model."""
    out = {}
    for package in ("torch", "onnx", "onnxscript", "onnxruntime"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def write_card(model_path: Path, card: dict[str, Any], json_path: Path) -> None:
    """Store the card in the model's ``metadata_props`` and beside it as readable JSON."""
    model = onnx.load(str(model_path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(card, sort_keys=False)
    model.doc_string = (
        f"{card['name']}: image classifier over {len(card['class_names'])} classes. Input '{INPUT_NAME}': uint8 NCHW "
        f"{card['input']['shape']}, values 0..255. Outputs '{OUTPUT_PROBABILITIES}' and '{OUTPUT_LOGITS}'. "
        f"Full card: metadata_props['{CARD_KEY}']."
    )
    model.graph.input[0].doc_string = card["input"]["preprocessing"]
    onnx.save(model, str(model_path))
    atomic_write_text(json_path, json.dumps(card, indent=2) + "\n")
