"""A deployable model on a machine without torch: opened, verified against its card and sidecar, run.

Evaluation and prediction both open models here (:func:`open_model`), so a model is
checked the same way wherever it is used: its sha256 against its sidecar, its card
(the input contract is never guessed), and its graph's input and output against the
card. Images are decoded by :func:`common.images.decode_samples` /
:func:`common.images.decode_in_batches` (the very preprocessing training used) and
fed in batches (:func:`predict_batches`).

**Bitwise**: every stage opens its session here, with the same settings, and feeds it
``uint8`` batches from the one decoder, so the same file gives bitwise the same
probabilities in ``evaluate``, ``predict`` and :class:`predict.Classifier`. On the CPU
provider a row's output depends only on its own image, not on the batch it travels
in (``tests/predict/test_bitwise.py`` checks this across batch sizes, thread counts and
neighbours); a provider or model for which that does not hold (a GPU's kernel choice
per batch size, dynamically quantized models) is still bitwise the same across the
three for the same batch size and order.

**Execution providers** (:data:`DEFAULT_PROVIDERS`: the CPU) are passed through to
onnxruntime. A provider this onnxruntime build does not offer is an error naming the
ones it does, and so is a session that silently fell back to another provider (as
onnxruntime does when, say, CUDA's libraries are missing): never a quiet CPU run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from common.contract import InputContract
from common.errors import UserError
from common.files import file_sha256
from common.integrity import sidecar, verify_sha256
from common.model_card import INPUT_NAME, OUTPUT_PROBABILITIES, ModelCard, read_card_file
from common.paths import display_path, model_dir
from common.provenance import moment

log = logging.getLogger(__name__)

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
"""The onnxruntime execution providers used unless others are asked for."""


@dataclass
class Model:
    """An ONNX model and what its card says.

    Attributes:
        path: The model file.
        card: Its model card.
        contract: The input contract from the card.
        class_names: Class names from the card.
        session: The onnxruntime session.
        sha256: The model file's sha256 (its identity: evaluations and predictions record it).
        verified: Whether the file was checked against its sidecar (False: it has none).
        providers: The execution providers the session uses, in onnxruntime's order of preference.
    """

    path: Path
    card: ModelCard
    contract: InputContract
    class_names: list[str]
    session: Any
    sha256: str = ""
    verified: bool = False
    providers: list[str] = field(default_factory=lambda: list(DEFAULT_PROVIDERS))


def open_model(path: Path, threads: int = 0, providers: Sequence[str] = DEFAULT_PROVIDERS) -> Model:
    """Load a model with onnxruntime and check its card against its graph.

    Args:
        path: The ``.onnx`` file.
        threads: onnxruntime intra-op threads (0: onnxruntime's default, one per core).
        providers: onnxruntime execution providers, most preferred first (e.g.
            ``("CUDAExecutionProvider", "CPUExecutionProvider")``).

    Raises:
        UserError: When the file is missing or unloadable, has no usable card, or its
            graph's input does not fit the card's contract; when a provider is not
            offered by this onnxruntime build, or the session did not take it.
    """
    import onnxruntime

    shown = display_path(path)
    if not Path(path).is_file():
        raise UserError(f"{shown}: model not found (export one with `pipenv run export`)")
    check_providers(providers)
    digest = verify_sha256(Path(path))  # before onnxruntime reads a damaged or altered file
    if digest is None:
        log.warning("%s: no %s beside it, so its integrity is not checked", shown, sidecar(Path(path)).name)
    try:
        session = onnxruntime.InferenceSession(str(path), session_options(threads), providers=list(providers))
    except Exception as exc:  # onnxruntime's own exception types
        raise UserError(f"{shown}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
    used = list(session.get_providers())
    missing = [name for name in providers if name not in used]
    if missing:
        raise UserError(f"{shown}: onnxruntime did not take the execution provider(s) {missing} (the session uses "
                        f"{used}); their libraries or device are missing here (onnxruntime's log above says why). "
                        "Nothing falls back silently: fix the set-up or ask for other --providers")
    card = ModelCard.from_metadata(dict(session.get_modelmeta().custom_metadata_map), shown)
    _check_graph(session, card.contract, len(card.class_names), shown)
    return Model(Path(path), card, card.contract, list(card.class_names), session,
                 digest or file_sha256(Path(path)), digest is not None, used)


def session_options(threads: int = 0) -> Any:
    """The onnxruntime session options every stage runs a model with (an ``onnxruntime.SessionOptions``).

    ``threads`` intra-op threads (0: one per core), which do not spin while they wait:
    onnxruntime's threads otherwise busy-wait between and after runs, taking the cores
    from the threads decoding the next batch beside them (``bench predict``: a small
    model went 27% faster on 2 cores without spinning; a ResNet-18 at 224x224, bound by
    inference, the same). The cost is a wake-up per parallel operator, microseconds.

    Args:
        threads: onnxruntime intra-op threads (0: onnxruntime's default).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def check_providers(providers: Sequence[str]) -> None:
    """Refuse an empty, repeated or unavailable list of onnxruntime execution providers.

    Raises:
        UserError: Naming the providers this onnxruntime build offers.
    """
    import onnxruntime

    available = list(onnxruntime.get_available_providers())
    unknown = [name for name in providers if name not in available]
    if not providers or unknown or len(set(providers)) != len(providers):
        what = f"{unknown} not available" if unknown else "an empty or repeated list"
        raise UserError(f"--providers: {what}; this onnxruntime ({onnxruntime.__version__}) offers {available} "
                        "(CUDA and TensorRT need the onnxruntime-gpu package and a GPU)")


def newest_model() -> Path:
    """The most recently exported model in the model folder (fp32 before int8 of the same export).

    Raises:
        UserError: When the model folder holds no model.
    """
    folder = model_dir()
    models = [p for p in folder.glob("*.onnx") if not p.name.startswith(".")] if folder.is_dir() else []
    if not models:
        raise UserError(f"no model in {display_path(folder)}; export one with `pipenv run export`, or pass --model")

    def key(path: Path) -> tuple[datetime, bool]:
        modified = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        try:
            card = read_card_file(path.with_suffix(".json"))
        except UserError:
            return modified, not path.stem.endswith("-int8")
        return (moment(card.created) if card.created else modified), not card.quantized

    return max(models, key=key)


def predict_batches(model: Model, batches: Iterable[np.ndarray]) -> np.ndarray:
    """Class probabilities for batches of ``uint8`` images ``(B, C, H, W)``; ``(N, K)`` float32.

    Raises:
        UserError: When onnxruntime fails to run the graph, or the graph returns anything but
            float32 ``(B, K)`` for a batch of B images (what its card promises).
    """
    outputs = [run_batch(model, batch) for batch in batches]
    if not outputs:
        return np.empty((0, len(model.class_names)), dtype=np.float32)
    return np.concatenate(outputs)


def run_batch(model: Model, batch: np.ndarray) -> np.ndarray:
    """The probabilities of one batch ``(B, C, H, W)``, checked against the card: float32 ``(B, K)``.

    Raises:
        UserError: Naming the model, when onnxruntime fails or the output disagrees with the card.
    """
    shown = display_path(model.path)
    try:
        probabilities = model.session.run([OUTPUT_PROBABILITIES], {INPUT_NAME: batch})[0]
    except Exception as exc:  # onnxruntime's own exception types
        raise UserError(f"{shown}: onnxruntime failed running the model on a batch of {len(batch)} images "
                        f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}); the "
                        "graph does not do what its card promises. Re-export it with `pipenv run export`.") from None
    expected = (len(batch), len(model.class_names))
    shape = getattr(probabilities, "shape", None)
    if shape != expected or getattr(probabilities, "dtype", None) != np.float32:
        raise UserError(f"{shown}: the graph returned {getattr(probabilities, 'dtype', type(probabilities).__name__)} "
                        f"{shape} for a batch of {len(batch)} images, but its card promises float32 {expected} "
                        f"({len(model.class_names)} classes). Re-export it with `pipenv run export`.")
    return probabilities


def _check_graph(session: Any, contract: InputContract, classes: int, shown: str) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    if INPUT_NAME not in inputs:
        raise UserError(f"{shown}: the graph has no input named '{INPUT_NAME}' (it has {sorted(inputs)})")
    graph_input = inputs[INPUT_NAME]
    if graph_input.type != "tensor(uint8)":
        raise UserError(f"{shown}: input '{INPUT_NAME}' is {graph_input.type}, the card promises tensor(uint8)")
    shape = list(graph_input.shape)
    if len(shape) != 4:
        raise UserError(f"{shown}: input '{INPUT_NAME}' has shape {shape}; expected (batch, C, H, W)")
    for axis, expected, what in ((1, contract.channels, f"channel(s) ({contract.color_mode})"),
                                 (2, contract.height, "rows (height)"), (3, contract.width, "columns (width)")):
        if isinstance(shape[axis], int) and shape[axis] != expected:
            raise UserError(
                f"{shown}: the graph's input takes {shape[axis]} {what.split(' (')[0]} but its card's input contract "
                f"gives {expected} {what}; the model and its card do not belong together, so its images cannot be "
                "prepared correctly. Re-export the model with `pipenv run export`."
            )
    outputs = {o.name: o for o in session.get_outputs()}
    if OUTPUT_PROBABILITIES not in outputs:
        raise UserError(f"{shown}: the graph has no output named '{OUTPUT_PROBABILITIES}' (it has {sorted(outputs)})")
    width = outputs[OUTPUT_PROBABILITIES].shape[-1]
    if isinstance(width, int) and width != classes:
        raise UserError(f"{shown}: the graph outputs {width} classes but its card names {classes}")
