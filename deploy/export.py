"""``export()``: a training run's checkpoint -> a self-describing, parity-checked ONNX model.

Steps: find the run and checkpoint; rebuild the network from the config stored in
the checkpoint and check it against the shared network config; load the weights
strictly; export (dynamo exporter, dynamic batch); ``onnx.checker`` full check;
compare onnxruntime with PyTorch on the run's validation images; write the card into
the model and beside it; optionally quantize to int8 and check that against fp32.
Everything is written in a staging folder first and moved into ``model/`` only when
every check passed, so a failed export leaves no model behind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.cli import check_plain_name
from common.dicts import describe_differences, differences
from common.digits import open_dataset_or_digits
from common.errors import UserError
from common.images import load_samples
from common.integrity import record_sha256
from common.lists import Dataset, Sample, read_split
from common.model_card import ModelCard
from common.paths import display_path, model_dir
from common.provenance import package_versions
from common.run_folder import RunConfig, RunFolder, find_run
from common.staging import staged
from deploy.card import EXPORT_PACKAGES, build_card, write_card
from deploy.graph import DEFAULT_OPSET, ExportedClassifier, check_onnx, graph_opset, supported_opsets, to_onnx
from deploy.parity import ParityReport, measure_parity, onnx_predictor
from deploy.quantize import MODES, quantize_int8
from networks import build_network, load_network_config
from networks.checkpoint import checkpoint_network_config, load_weights, read_checkpoint
from networks.config import NetworkConfig, network_config_path

DEFAULT_TOLERANCE = 1e-4
"""Largest absolute difference of any class probability allowed between ONNX and PyTorch."""

DEFAULT_INT8_AGREEMENT = 0.99
"""Smallest top-1 agreement of an int8 model with its fp32 model."""


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how.

    Attributes:
        run: Run folder, its name, or ``last`` (the newest run).
        checkpoint: ``best``, ``last`` or a path to a checkpoint.
        name: Model name (default: the run's name).
        opset: ONNX opset.
        tolerance: Parity limit on the absolute probability difference (fp32).
        parity_samples: Validation images used for the parity check (the first N of the list).
        quantize: ``int8`` to also write ``<name>-int8.onnx``; None for fp32 only.
        quantize_mode: ``static`` (calibrated) or ``dynamic``.
        calibration_samples: Training images used to calibrate static quantization.
        int8_min_agreement: Top-1 agreement with fp32 that the int8 model must reach.
        network_config: The shared network config to check against (default:
            ``shared_configs/networks/<the checkpoint's network name>.yaml``).
        overwrite: Replace models of the same name (never done silently).
    """

    run: str = "last"
    checkpoint: str = "best"
    name: str | None = None
    opset: int = DEFAULT_OPSET
    tolerance: float = DEFAULT_TOLERANCE
    parity_samples: int = 512
    quantize: str | None = None
    quantize_mode: str = "static"
    calibration_samples: int = 256
    int8_min_agreement: float = DEFAULT_INT8_AGREEMENT
    network_config: Path | None = None
    overwrite: bool = False


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote.

    Attributes:
        model: The fp32 ONNX model.
        card: Its model card.
        parity: Its parity report against PyTorch.
        int8_model: The int8 model, when asked for.
        int8_parity: Its parity report against the fp32 model.
    """

    model: Path
    card: ModelCard
    parity: ParityReport
    int8_model: Path | None = None
    int8_parity: ParityReport | None = None


class ParityError(UserError):
    """The exported model does not compute what the PyTorch network computes."""


def export(options: ExportOptions = ExportOptions()) -> ExportResult:
    """Export a training run's checkpoint to ``model/<name>.onnx`` and ``model/<name>.json``.

    Raises:
        UserError: For a missing or unusable run or checkpoint, a shared network config
            that changed since training, a name already taken (without ``overwrite``),
            or invalid options.
        ParityError: When the ONNX model (or the int8 model) fails its parity check;
            nothing is written to ``model/`` then.
    """
    _check_options(options)
    run = find_run(options.run)
    checkpoint_path = run.checkpoint_path(options.checkpoint)
    checkpoint = read_checkpoint(checkpoint_path)
    if checkpoint.get("run") not in (None, run.name):
        raise UserError(
            f"{display_path(checkpoint_path)} was written by run {checkpoint['run']!r}, not by {run.name!r}; the card "
            f"must name the run the weights came from: export it with --run {checkpoint['run']}"
        )
    network_config = checkpoint_network_config(checkpoint, display_path(checkpoint_path))
    check_shared_config(network_config, options.network_config, run)
    name = options.name or run.name
    # Sidecars and cards go before models, so a model never appears without them.
    models = [name, f"{name}-int8"] if options.quantize else [name]
    files = [f"{model}{suffix}" for model in models for suffix in (".json", ".onnx.sha256", ".onnx")]
    with staged(model_dir(), exists="replace" if options.overwrite else "refuse", files=files,
                hint="choose another --name, or pass --overwrite to replace it") as stage:
        network = build_network(network_config)
        load_weights(network, checkpoint["model"], mode="strict", source=display_path(checkpoint_path))
        module = ExportedClassifier(network.eval()).eval()
        config = run.read_run_config()
        validation = _validation_images(config, network_config, options.parity_samples)
        onnx_path = stage.path / f"{name}.onnx"
        parity = _export_fp32(module, onnx_path, options, validation)
        card = build_card(name, network_config, checkpoint, checkpoint_path, run,
                          _export_settings(options, graph_opset(onnx_path)), parity.to_dict())
        write_card(onnx_path, card, onnx_path.with_suffix(".json"))
        record_sha256(onnx_path, replacing=model_dir() / onnx_path.name)
        int8_parity = None
        if options.quantize:
            int8_parity = _export_int8(options, stage.path / f"{name}-int8.onnx", stage.path / f"{name}.onnx", card,
                                       config, network_config, validation)
    model_path = model_dir() / f"{name}.onnx"
    int8_path = model_dir() / f"{name}-int8.onnx" if options.quantize else None
    return ExportResult(model=model_path, card=card, parity=parity, int8_model=int8_path, int8_parity=int8_parity)


@dataclass(frozen=True)
class _Images:
    """Decoded images of a split, for parity checks."""

    images: np.ndarray
    labels: np.ndarray
    samples: list[Sample]
    source: str
    dataset: Dataset


def _validation_images(config: RunConfig, network_config: NetworkConfig, count: int) -> _Images:
    dataset = open_dataset_or_digits(config.dataset)
    samples = read_split(dataset, config.split("val"))[:count]
    images, labels, samples = load_samples(dataset, samples, network_config.input, config.on_unreadable)
    return _Images(images, labels, samples, display_path(dataset.list_path(config.split("val"))), dataset)


def _export_fp32(module: ExportedClassifier, onnx_path: Path, options: ExportOptions, validation: _Images
                 ) -> ParityReport:
    to_onnx(module, onnx_path, options.opset)
    written = graph_opset(onnx_path)
    if written != options.opset:
        raise UserError(f"--opset {options.opset}: the exporter wrote a graph of opset {written}; nothing was written to "
                        f"{display_path(model_dir())}. Export at opset {written}, or another one it writes as asked.")
    check_onnx(onnx_path)
    parity = measure_parity(_torch_predictor(module), onnx_predictor(onnx_path), validation.images,
                            validation.labels, validation.samples, ("pytorch", "onnxruntime fp32"),
                            validation.source, options.tolerance, 0.0)
    if not parity.passed:
        raise ParityError(_parity_message(parity, "the exported model"))
    return parity


def _export_settings(options: ExportOptions, opset: int) -> dict[str, Any]:
    """The card's ``export`` section; ``opset`` is the one the written graph declares."""
    return {"opset": opset, "exporter": "torch.onnx.export(dynamo=True)", "dynamic_axes": ["batch"],
            "parity_tolerance": options.tolerance, "packages": package_versions(EXPORT_PACKAGES),
            "quantization": None}


def check_shared_config(network_config: NetworkConfig, shared_path: Path | None, run: RunFolder) -> None:
    """Refuse a checkpoint whose network config differs from the shared one.

    Raises:
        UserError: Showing both hashes, what differs, and how to proceed.
    """
    path = shared_path or network_config_path(network_config.name)
    shared = load_network_config(path)
    comparable = NetworkConfig.from_dict({**network_config.to_dict(), "name": shared.name}, "checkpoint")
    if comparable.hash == shared.hash:
        return
    changes = describe_differences(differences(network_config.to_dict(), shared.to_dict())) or "name"
    raise UserError(
        f"{display_path(path)} (hash {shared.hash[:12]}) differs from the network config the checkpoint was "
        f"trained with (hash {network_config.hash[:12]}): {changes}. Training and deployment must build the same "
        f"network: restore the shared config (the run's version is under network_config in "
        f"{display_path(run.config_path)}), or train a new run with the changed config."
    )


def _export_int8(options: ExportOptions, int8_path: Path, fp32_path: Path, card: ModelCard, config: RunConfig,
                 network_config: NetworkConfig, validation: _Images) -> ParityReport:
    train_samples = read_split(validation.dataset, config.split("train"))
    chosen = np.random.default_rng(0).permutation(len(train_samples))[: options.calibration_samples]
    calibration, _, _ = load_samples(validation.dataset, [train_samples[i] for i in sorted(chosen)],
                                     network_config.input, on_unreadable="skip")
    settings = quantize_int8(fp32_path, int8_path, options.quantize_mode, calibration)
    check_onnx(int8_path)
    parity = measure_parity(onnx_predictor(fp32_path), onnx_predictor(int8_path), validation.images,
                            validation.labels, validation.samples,
                            ("onnxruntime fp32", f"onnxruntime int8 {options.quantize_mode}"), validation.source,
                            tolerance=1.0, min_top1_agreement=options.int8_min_agreement)
    if not parity.passed:
        raise ParityError(_parity_message(parity, "the int8 model"))
    int8_card = card.with_changes(
        name=int8_path.stem, source=replace(card.source, fp32_model=fp32_path.name),
        export={**card.export, "opset": graph_opset(int8_path), "quantization": settings}, parity=parity.to_dict())
    write_card(int8_path, int8_card, int8_path.with_suffix(".json"))
    record_sha256(int8_path, replacing=model_dir() / int8_path.name)
    return parity


def _torch_predictor(module: ExportedClassifier) -> Any:
    def predict(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(images))[0].numpy()

    return predict


def _parity_message(report: ParityReport, what: str) -> str:
    worst = "; ".join(f"{w['path']} (label {w['label']}: {w['reference_top1']} vs {w['candidate_top1']}, "
                      f"|dp| {w['max_abs_diff']:.2e})" for w in report.worst[:3])
    return (f"{what} failed its parity check, so nothing was written to {display_path(model_dir())}. "
            f"{report.summary()}. Worst samples: {worst}.")


def _check_options(options: ExportOptions) -> None:
    opsets = supported_opsets()
    if options.opset not in opsets:
        raise UserError(f"--opset {options.opset}: torch's exporter writes opsets {opsets.start}..{opsets.stop - 1} "
                        f"(the newest the installed onnx knows); the default is {DEFAULT_OPSET}")
    if options.quantize not in (None, "int8"):
        raise UserError(f"--quantize {options.quantize!r}: the only choice is int8")
    if options.quantize_mode not in MODES:
        raise UserError(f"--quantize-mode {options.quantize_mode!r}: use one of {list(MODES)}")
    if options.tolerance < 0 or not 0 <= options.int8_min_agreement <= 1:
        raise UserError("--tolerance must be >= 0 and --int8-min-agreement within [0, 1]")
    if options.parity_samples < 1 or options.calibration_samples < 1:
        raise UserError("--parity-samples and --calibration-samples must be at least 1")
    check_plain_name(options.name)
