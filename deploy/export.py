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

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from common.digits import open_dataset
from common.dicts import describe_differences, differences
from common.errors import UserError
from common.files import file_sha256, read_json_object
from common.images import load_samples
from common.lists import read_split
from common.paths import display_path, model_dir
from common.runs import find_run
from deploy.card import build_card, package_versions, write_card
from deploy.graph import DEFAULT_OPSET, ExportedClassifier, check_onnx, to_onnx
from deploy.parity import ParityReport, compare, onnx_predictor
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
    card: dict[str, Any]
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
    run_dir = find_run(options.run)
    checkpoint_path = _checkpoint_path(run_dir, options.checkpoint)
    checkpoint = read_checkpoint(checkpoint_path)
    network_config = checkpoint_network_config(checkpoint, display_path(checkpoint_path))
    check_shared_config(network_config, options.network_config, run_dir)
    name = options.name or run_dir.name
    model_path = model_dir() / f"{name}.onnx"
    int8_target = model_dir() / f"{name}-int8.onnx" if options.quantize else None
    # Cards go before models, so a model never appears without its card.
    targets = [model_path.with_suffix(".json"), model_path]
    if int8_target is not None:
        targets += [int8_target.with_suffix(".json"), int8_target]
    _refuse_existing(targets, options.overwrite)

    network = build_network(network_config)
    load_weights(network, checkpoint["model"], mode="strict", source=display_path(checkpoint_path))
    module = ExportedClassifier(network.eval()).eval()
    run_config = _run_config(run_dir)
    dataset = open_dataset(run_config["data"]["dataset"])
    val_split = run_config["data"]["val_split"]
    samples = read_split(dataset, val_split)[: options.parity_samples]
    images, labels, samples = load_samples(dataset, samples, network_config.input,
                                           on_unreadable=run_config["data"].get("on_unreadable", "error"))
    source = display_path(dataset.list_path(val_split))

    model_dir().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.export-", dir=model_dir()))
    try:
        onnx_path = staging / f"{name}.onnx"
        to_onnx(module, onnx_path, options.opset)
        check_onnx(onnx_path)
        parity = compare(_torch_predictor(module), onnx_predictor(onnx_path), images, labels, samples,
                         ("pytorch", "onnxruntime fp32"), source, options.tolerance, 0.0)
        if not parity.passed:
            raise ParityError(_parity_message(parity, "the exported model"))
        created = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
        card = build_card(
            name, network_config, list(checkpoint["class_names"]),
            source=_source(run_dir, checkpoint_path, checkpoint),
            training={"metrics": checkpoint.get("metrics"), "epoch": checkpoint.get("epoch"),
                      "best": (checkpoint.get("checkpoint_keeper") or {}).get("best")},
            export={"opset": options.opset, "exporter": "torch.onnx.export(dynamo=True)", "dynamic_axes": ["batch"],
                    "parity_tolerance": options.tolerance, "packages": package_versions(), "quantization": None},
            parity=parity.to_dict(), created=created,
        )
        write_card(onnx_path, card, staging / f"{name}.json")
        int8_parity = None
        if options.quantize:
            int8_parity = _export_int8(options, name, staging, onnx_path, card, run_config, dataset,
                                                  network_config, images, labels, samples, source)
        _publish(staging, targets, options.overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(model=model_path, card=card, parity=parity, int8_model=int8_target, int8_parity=int8_parity)


def check_shared_config(network_config: NetworkConfig, shared_path: Path | None, run_dir: Path) -> None:
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
        f"{display_path(run_dir / 'config.yaml')}), or train a new run with the changed config."
    )


def _export_int8(options: ExportOptions, name: str, staging: Path, fp32_path: Path, card: dict[str, Any],
                 run_config: dict[str, Any], dataset, network_config: NetworkConfig, images: np.ndarray,
                 labels: np.ndarray, samples, source: str) -> ParityReport:
    int8_name = f"{name}-int8"
    int8_path = staging / f"{int8_name}.onnx"
    train_samples = read_split(dataset, run_config["data"]["train_split"])
    chosen = np.random.default_rng(0).permutation(len(train_samples))[: options.calibration_samples]
    calibration, _, _ = load_samples(dataset, [train_samples[i] for i in sorted(chosen)], network_config.input,
                                     on_unreadable="skip")
    settings = quantize_int8(fp32_path, int8_path, options.quantize_mode, calibration)
    check_onnx(int8_path)
    parity = compare(onnx_predictor(fp32_path), onnx_predictor(int8_path), images, labels, samples,
                     ("onnxruntime fp32", f"onnxruntime int8 {options.quantize_mode}"), source,
                     tolerance=1.0, min_top1_agreement=options.int8_min_agreement)
    if not parity.passed:
        raise ParityError(_parity_message(parity, "the int8 model"))
    int8_card = {
        **card,
        "name": int8_name,
        "source": {**card["source"], "fp32_model": f"{name}.onnx"},
        "export": {**card["export"], "quantization": settings},
        "parity": parity.to_dict(),
    }
    write_card(int8_path, int8_card, staging / f"{int8_name}.json")
    return parity


def _torch_predictor(module: ExportedClassifier):
    def predict(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(images))[0].numpy()

    return predict


def _publish(staging: Path, targets: list[Path], overwrite: bool) -> None:
    """Move the staged files into model/ in ``targets`` order, each by an atomic rename."""
    _refuse_existing(targets, overwrite)
    for target in targets:
        staged = staging / target.name
        if staged.exists():
            os.replace(staged, target)


def _refuse_existing(targets: list[Path], overwrite: bool) -> None:
    taken = [t for t in targets if t.exists()]
    if taken and not overwrite:
        raise UserError(
            f"{display_path(taken[0])} already exists; choose another --name, or pass --overwrite to replace it"
        )


def _checkpoint_path(run_dir: Path, checkpoint: str) -> Path:
    if checkpoint in ("best", "last"):
        path = run_dir / "checkpoints" / f"{checkpoint}.pt"
        if not path.is_file():
            raise UserError(f"{display_path(path)}: no {checkpoint} checkpoint in this run (did an epoch finish?)")
        return path
    return Path(checkpoint)


def _run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        data = config["data"]
        for key in ("dataset", "train_split", "val_split"):
            str(data[key])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise UserError(f"{display_path(path)}: not a training run config ({exc})") from None
    return config


def _source(run_dir: Path, checkpoint_path: Path, checkpoint: dict[str, Any]) -> dict[str, Any]:
    digest = file_sha256(checkpoint_path)
    git = read_json_object(run_dir / "manifest.json").get("git") or {}
    return {"run": run_dir.name, "run_dir": display_path(run_dir), "checkpoint": display_path(checkpoint_path),
            "checkpoint_sha256": digest, "epoch": checkpoint.get("epoch"), "git_commit": git.get("commit"),
            "git_dirty": git.get("dirty")}


def _parity_message(report: ParityReport, what: str) -> str:
    worst = "; ".join(f"{w['path']} (label {w['label']}: {w['reference_top1']} vs {w['candidate_top1']}, "
                      f"|dp| {w['max_abs_diff']:.2e})" for w in report.worst[:3])
    return (f"{what} failed its parity check, so nothing was written to {display_path(model_dir())}. "
            f"{report.summary()}. Worst samples: {worst}.")


def _check_options(options: ExportOptions) -> None:
    if options.quantize not in (None, "int8"):
        raise UserError(f"--quantize {options.quantize!r}: the only choice is int8")
    if options.quantize_mode not in MODES:
        raise UserError(f"--quantize-mode {options.quantize_mode!r}: use one of {list(MODES)}")
    if options.tolerance < 0 or not 0 <= options.int8_min_agreement <= 1:
        raise UserError("--tolerance must be >= 0 and --int8-min-agreement within [0, 1]")
    if options.parity_samples < 1 or options.calibration_samples < 1:
        raise UserError("--parity-samples and --calibration-samples must be at least 1")
    if options.name is not None and (not options.name or "/" in options.name or options.name.startswith(".")):
        raise UserError(f"--name {options.name!r}: a plain file name, without '/' or a leading '.'")
