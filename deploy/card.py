"""Building a model's card from its run and storing it inside the ONNX model."""

from __future__ import annotations

from pathlib import Path

import onnx

from common.files import file_sha256
from common.model_card import (
    CARD_KEY,
    INPUT_NAME,
    OUTPUT_LOGITS,
    OUTPUT_PROBABILITIES,
    CardNetwork,
    CardSource,
    CardTraining,
    ModelCard,
)
from common.paths import display_path
from common.provenance import now
from common.run_folder import RunFolder
from networks.config import NetworkConfig

EXPORT_PACKAGES = ("torch", "onnx", "onnxscript", "onnxruntime", "timm")
"""Packages whose versions the card records."""


def build_card(name: str, network_config: NetworkConfig, checkpoint: dict, checkpoint_path: Path,
               run: RunFolder | None, export: dict, parity: dict) -> ModelCard:
    """The card of a model exported from a training checkpoint.

    Args:
        name: The model's name.
        network_config: The network config stored in the checkpoint.
        checkpoint: The checkpoint (``epoch``, ``metrics``, ``class_names``).
        checkpoint_path: Its file (hashed for provenance).
        run: The run it belongs to (its manifest gives the git state, pretrained
            weights and best epoch), or None.
        export: Export settings.
        parity: The parity report.
    """
    manifest = run.read_manifest() if run is not None else None
    git = manifest.git if manifest else {}
    init = (manifest.init or {}) if manifest else {}
    source = CardSource(
        run=run.name if run else None, run_dir=display_path(run.path) if run else None,
        checkpoint=display_path(checkpoint_path), checkpoint_sha256=file_sha256(checkpoint_path),
        epoch=checkpoint.get("epoch"), git_commit=git.get("commit"), git_dirty=git.get("dirty"),
        pretrained={"file": init["file"], "sha256": init["sha256"]} if init.get("sha256") else None,
        lists=(dict(manifest.data.get("lists") or {}) or None) if manifest else None,
    )
    training = CardTraining(epoch=checkpoint.get("epoch"), metrics=dict(checkpoint.get("metrics") or {}),
                            best=run.best(manifest) if run else None)
    return ModelCard(name=name, created=now(), class_names=tuple(checkpoint["class_names"]),
                     contract=network_config.input, network=card_network(network_config), source=source,
                     training=training, export=export, parity=parity)


def card_network(network_config: NetworkConfig) -> CardNetwork:
    """The card's description of a network config."""
    return CardNetwork(name=network_config.name, arch=network_config.arch.name, hash=network_config.hash,
                       config=network_config.to_dict())


def write_card(model_path: Path, card: ModelCard, json_path: Path) -> None:
    """Store the card in the model's ``metadata_props`` and beside it as readable JSON."""
    model = onnx.load(str(model_path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, card.to_json()
    model.doc_string = (
        f"{card.name}: image classifier over {len(card.class_names)} classes. Input '{INPUT_NAME}': uint8 NCHW "
        f"{['batch', *card.contract.shape]}, values 0..255. Outputs '{OUTPUT_PROBABILITIES}' and '{OUTPUT_LOGITS}'. "
        f"Full card: metadata_props['{CARD_KEY}']."
    )
    model.graph.input[0].doc_string = card.to_dict()["input"]["preprocessing"]
    onnx.save(model, str(model_path))
    card.write_file(json_path)
