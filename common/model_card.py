"""The model card: what an exported ONNX model says about itself, and its one owner.

:class:`ModelCard` is the only code that builds, writes out and reads a card.
Deployment builds one; its JSON (:meth:`ModelCard.to_json`) goes into the ONNX
model's ``metadata_props`` under ``CARD_KEY`` and, human-readable, into
``model/<name>.json`` beside it. Evaluation and ``pipenv run runs`` read it back with
:func:`read_model_card` / :func:`read_card_file`, which validate the version and
every field the stages rely on, and refuse a model without one instead of guessing
the preprocessing. Reading never evaluates code: it is JSON (:func:`common.files.parse_json`).

The layout (``schema_version`` 1) is documented field by field in
docs/deployment.md#the-card.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from common.contract import InputContract
from common.errors import UserError
from common.files import atomic_write_text, canonical_hash, parse_json, read_text
from common.limits import MAX_CLASSES
from common.paths import display_path

CARD_KEY = "imagepipe.model_card"
"""The ``metadata_props`` key holding the card's JSON."""

CARD_SCHEMA_VERSION = 1
"""The card layout this code writes and reads."""

INPUT_NAME = "images"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_LOGITS = "logits"

PREPROCESSING = (
    "decode with Pillow, apply the EXIF orientation, convert to input.contract.color_mode, resize to "
    "input.contract.width x input.contract.height with input.contract.interpolation (skipped when the size "
    "already matches); channels in colour-mode order (R, G, B for RGB); no normalisation (it is in the graph)"
)


@dataclass(frozen=True)
class CardNetwork:
    """The network a model was built from.

    Attributes:
        name: The shared network config's name.
        arch: The registered architecture.
        hash: The network config's hash.
        config: The resolved network config (as stored in checkpoints).
    """

    name: str
    arch: str
    hash: str
    config: dict[str, Any]


@dataclass(frozen=True)
class CardSource:
    """Where a model's weights came from (None where unknown).

    Attributes:
        run: The training run's folder name.
        run_dir: The run folder as shown to the user.
        checkpoint: The checkpoint file exported.
        checkpoint_sha256: Its sha256.
        epoch: Epochs completed at that checkpoint.
        git_commit: The commit the run trained at.
        git_dirty: Whether the tree had uncommitted changes.
        pretrained: ``{"file", "sha256"}`` of the pretrained weights the run started from.
        fp32_model: For an int8 model, the fp32 model it was quantized from.
        lists: The run's list files, ``split -> {"path", "sha256", "samples", "version"}`` (the run
            manifest's ``data.lists``; ``version`` from the data set's list history, when it knew the file).
    """

    run: str | None = None
    run_dir: str | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    epoch: int | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    pretrained: dict[str, Any] | None = None
    fp32_model: str | None = None
    lists: dict[str, Any] | None = None


@dataclass(frozen=True)
class CardTraining:
    """What training measured for the exported checkpoint.

    Attributes:
        epoch: The checkpoint's epoch.
        metrics: That epoch's metrics row (``train/loss``, ``val/accuracy``, ...).
        best: ``{"metric", "value", "epoch"}`` of the run's best epoch.
    """

    epoch: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] | None = None


@dataclass(frozen=True)
class ModelCard:
    """A deployable model's self-description.

    Attributes:
        name: The model's name (the file's stem).
        created: When it was exported (ISO 8601).
        class_names: Output column ``i`` is ``class_names[i]``.
        contract: How to turn an image file into the model's input.
        network: The network it was built from.
        source: Where its weights came from.
        training: What training measured.
        export: Export settings (opset, exporter, tolerances, package versions, quantization).
        parity: The export parity report.
    """

    name: str
    created: str
    class_names: tuple[str, ...]
    contract: InputContract
    network: CardNetwork
    source: CardSource = field(default_factory=CardSource)
    training: CardTraining = field(default_factory=CardTraining)
    export: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)

    @property
    def quantized(self) -> bool:
        """Whether the model was quantized (an int8 model)."""
        return bool(self.export.get("quantization"))

    def with_changes(self, **changes: Any) -> ModelCard:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The card in its documented JSON layout."""
        classes = len(self.class_names)
        return {
            "schema_version": CARD_SCHEMA_VERSION,
            "name": self.name,
            "created": self.created,
            "class_names": list(self.class_names),
            "input": {"name": INPUT_NAME, "layout": "NCHW", "dtype": "uint8", "range": [0, 255],
                      "shape": ["batch", *self.contract.shape], "contract": self.contract.to_dict(),
                      "preprocessing": PREPROCESSING},
            "outputs": {
                OUTPUT_PROBABILITIES: {"shape": ["batch", classes], "dtype": "float32",
                                       "meaning": "softmax class probabilities; column i is class_names[i]"},
                OUTPUT_LOGITS: {"shape": ["batch", classes], "dtype": "float32",
                                "meaning": "class scores before the softmax"},
            },
            "normalization": {"inside_graph": True, "formula": "(x / 255 - mean) / std",
                              "mean": list(self.contract.mean), "std": list(self.contract.std)},
            "network": asdict(self.network),
            "source": {k: v for k, v in asdict(self.source).items() if v is not None or k not in _OPTIONAL_SOURCE},
            "training": asdict(self.training),
            "export": self.export,
            "parity": self.parity,
        }

    def to_json(self, indent: int | None = None) -> str:
        """The card as JSON text (``indent=2`` for the readable file)."""
        return json.dumps(self.to_dict(), indent=indent)

    def write_file(self, path: Path) -> None:
        """Write the readable copy, ``model/<name>.json``, atomically."""
        atomic_write_text(path, self.to_json(indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: Any, source: str) -> ModelCard:
        """Validate a card's JSON layout into a :class:`ModelCard`.

        Args:
            data: The parsed JSON.
            source: The file it came from, named in every message.

        Raises:
            UserError: For an unknown schema version, a missing or malformed field, or
                an input contract that differs from the card's own network config.
        """
        if not isinstance(data, dict):
            raise UserError(f"{source}: the model card is not a JSON object")
        if data.get("schema_version") != CARD_SCHEMA_VERSION:
            raise UserError(f"{source}: model card schema_version {data.get('schema_version')!r}; this code reads "
                            f"{CARD_SCHEMA_VERSION} (export the model again with this version of the project)")
        problems = _missing_fields(data)
        if problems:
            raise UserError(f"{source}: incomplete model card: " + "; ".join(problems))
        contract = InputContract.from_dict(data["input"]["contract"], source=f"{source}: input.contract")
        network = CardNetwork(**{f.name: data["network"][f.name] for f in fields(CardNetwork)})
        _check_network(network, contract, source)
        _check_classes(data["class_names"], network, source)
        return cls(
            name=data["name"], created=str(data.get("created") or ""), class_names=tuple(data["class_names"]),
            contract=contract, network=network,
            source=_typed(CardSource, data.get("source"), f"{source}: source"),
            training=_typed(CardTraining, data.get("training"), f"{source}: training"),
            export=_mapping(data.get("export"), f"{source}: export"),
            parity=_mapping(data.get("parity"), f"{source}: parity"),
        )

    @classmethod
    def from_json(cls, text: str, source: str) -> ModelCard:
        """Parse and validate a card's JSON text.

        Raises:
            UserError: When the text is not JSON or not a valid card.
        """
        return cls.from_dict(parse_json(text, source, "the model card is not valid JSON"), source)

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: str) -> ModelCard:
        """The card from an ONNX model's ``metadata_props`` (as a dict).

        Raises:
            UserError: When there is no card (the input contract would be unknown) or it is invalid.
        """
        if CARD_KEY not in metadata:
            raise UserError(
                f"{source}: no '{CARD_KEY}' in the model's metadata, so its input contract (colour mode, size, "
                "interpolation, normalisation) is unknown; export it with `pipenv run export`, this project does "
                "not guess preprocessing"
            )
        return cls.from_json(metadata[CARD_KEY], source)


def read_model_card(path: Path) -> ModelCard:
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
    return ModelCard.from_metadata(dict(session.get_modelmeta().custom_metadata_map), shown)


def read_card_file(path: Path) -> ModelCard:
    """Read a ``model/<name>.json`` card file.

    Raises:
        UserError: When the file is unreadable or not a valid card.
    """
    return ModelCard.from_json(read_text(path), display_path(path))


_OPTIONAL_SOURCE = ("pretrained", "fp32_model", "lists")
"""Source fields written only when set (cards without them read the same)."""


def _missing_fields(data: dict[str, Any]) -> list[str]:
    problems = []
    if not isinstance(data.get("name"), str) or not data.get("name"):
        problems.append("name: expected a non-empty string")
    names = data.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        problems.append("class_names: expected a non-empty list of strings")
    if not isinstance(data.get("input"), dict) or "contract" not in data["input"]:
        problems.append("input.contract: missing")
    outputs = data.get("outputs")
    if not isinstance(outputs, dict) or OUTPUT_PROBABILITIES not in outputs:
        problems.append(f"outputs.{OUTPUT_PROBABILITIES}: missing")
    network = data.get("network")
    for key, kind in (("name", str), ("arch", str), ("hash", str), ("config", dict)):
        if not isinstance(network, dict) or not isinstance(network.get(key), kind):
            problems.append(f"network.{key}: missing")
    return problems


def _check_network(network: CardNetwork, contract: InputContract, source: str) -> None:
    if canonical_hash(network.config) != network.hash:
        raise UserError(f"{source}: network.config does not hash to network.hash {network.hash[:12]}; the card "
                        "was altered or damaged")
    stated = network.config.get("input")
    if stated != contract.to_dict():
        raise UserError(f"{source}: input.contract {contract.to_dict()} differs from the card's network config "
                        f"input {stated}; the card was altered or damaged, so the preprocessing is unknown")


def _check_classes(names: list[str], network: CardNetwork, source: str) -> None:
    """Refuse class names that disagree with the card's network config (its ``num_classes``), repeat, or
    outnumber :data:`common.limits.MAX_CLASSES`."""
    stated = network.config.get("num_classes")
    if stated != len(names):
        raise UserError(f"{source}: class_names names {len(names)} classes but the card's network config has "
                        f"num_classes {stated!r}; the card was altered or damaged, so its outputs cannot be named")
    if len(names) > MAX_CLASSES:
        raise UserError(f"{source}: {len(names)} classes; this project handles at most {MAX_CLASSES} "
                        "(common.limits.MAX_CLASSES)")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UserError(f"{source}: class_names names {name!r} twice; every output column needs its own class")
        seen.add(name)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _typed(cls: type, value: Any, where: str) -> Any:
    data = _mapping(value, where)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{where}: unknown field(s) {unknown}; this code knows {sorted(known)}")
    return cls(**data)
