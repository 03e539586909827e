"""The training config: defaults <- YAML file <- dotted command-line overrides.

Training owns it. A run's ``config.yaml`` crosses a stage boundary, but deployment
and ``pipenv run runs`` read only a few keys of it, without OmegaConf, through
:class:`common.run_folder.RunConfig`.

Merging and type checking are OmegaConf's (structured configs); the result is
validated as a whole and returned as a frozen :class:`TrainConfig` that is passed
down explicitly. Every error names its source (file or command line) and key path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from common.errors import UserError
from common.files import yaml_text
from common.images import ON_UNREADABLE
from common.paths import PROJECT_ROOT, display_path
from common.run_folder import PINNED_KEYS
from networks.config_files import describe_config_error, load_yaml_mapping, merge, parse_overrides
from train.metrics import MONITORED, metric_spec

DEFAULT_CONFIG = PROJECT_ROOT / "train" / "configs" / "default.yaml"
"""The config ``pipenv run train`` uses without ``--config``."""

PACK_CHOICES = ("auto", "require", "off")
"""Values of ``data.pack``."""

STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGHUP")
"""Signals ``checkpoint.signals`` may name (SIGKILL and SIGSTOP cannot be caught)."""

UNCOMPUTED_KEYS = ("checkpoint.every_minutes", "checkpoint.every_steps", "checkpoint.signals")
"""Keys that change when and why checkpoints are written, never what a run computes: a resume may change them
without ``--allow-change``."""

WANDB_MODES = ("offline", "online")
"""Values of ``log.wandb.mode``."""
OPTIMIZERS = ("sgd", "adamw")
"""``optim.name`` choices."""
SCHEDULES = ("cosine", "step", "constant")
"""``schedule.name`` choices."""


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from.

    Attributes:
        dataset: A data set folder name under the data folder (``data/<dataset>``) or a
            path. ``digits`` is prepared automatically when missing.
        train_split: List used for training.
        val_split: List used for validation (and checkpoint selection).
        dev_split: List used for both with ``--dev``.
        on_unreadable: ``error`` stops at an unreadable image; ``skip`` logs and drops it.
        in_memory: Hold each split in memory: read from a matching pack, or decode
            every image once. Otherwise batches are read from a pack (memory stays
            bounded by the batch) or decoded per batch in ``num_workers`` processes.
        num_workers: Decoding processes (kept for the whole run) when a split is
            decoded per batch.
        pack: ``auto`` uses a matching pack (``pipenv run pack``) and logs why one is
            ignored; ``require`` refuses to start without one; ``off`` never uses one.
        keep_on_gpu: ``auto`` keeps an in-memory split on the GPU (uint8) when it
            takes at most ``gpu_memory_fraction`` of the free GPU memory; ``always``
            or ``never``. Ignored on the CPU.
        gpu_memory_fraction: See ``keep_on_gpu``.
    """

    dataset: str = "digits"
    train_split: str = "train"
    val_split: str = "val"
    dev_split: str = "dev"
    on_unreadable: str = "error"
    in_memory: bool = True
    num_workers: int = 0
    pack: str = "auto"
    keep_on_gpu: str = "auto"
    gpu_memory_fraction: float = 0.25


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation of training batches (never applied to validation).

    All zero / one (the defaults) means no augmentation.

    Attributes:
        rotation: Maximum rotation in degrees, drawn uniformly in ``[-rotation, rotation]``.
        translate: Maximum shift as a fraction of the image size, per axis.
        scale_min: Smallest zoom factor.
        scale_max: Largest zoom factor.
        hflip: Probability of a horizontal flip (leave 0 for digits and text).
        brightness: Maximum relative brightness change.
        contrast: Maximum relative contrast change.
    """

    rotation: float = 0.0
    translate: float = 0.0
    scale_min: float = 1.0
    scale_max: float = 1.0
    hflip: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and loss.

    Attributes:
        name: ``sgd`` or ``adamw``.
        lr: Peak learning rate.
        weight_decay: Decoupled (AdamW) or L2 (SGD) weight decay, not applied to
            biases and normalisation weights.
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        betas: AdamW betas.
        grad_clip_norm: Clip the gradient norm to this value; 0 disables.
        label_smoothing: Cross-entropy label smoothing.
    """

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip_norm: float = 0.0
    label_smoothing: float = 0.0


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, evaluated every optimiser step.

    Attributes:
        name: ``cosine`` (to ``min_lr_ratio * lr``), ``step`` (times ``gamma`` every
            ``step_epochs``) or ``constant``.
        warmup_epochs: Linear warmup from ``warmup_start * lr`` over this many epochs
            (fractions allowed); 0 disables.
        warmup_start: Learning-rate factor at the first step of the warmup.
        min_lr_ratio: Floor of the cosine schedule, as a fraction of ``lr``.
        step_epochs: Period of the step schedule.
        gamma: Factor of the step schedule.
    """

    name: str = "cosine"
    warmup_epochs: float = 0.0
    warmup_start: float = 0.01
    min_lr_ratio: float = 0.0
    step_epochs: int = 30
    gamma: float = 0.1


@dataclass(frozen=True)
class CheckpointConfig:
    """Which checkpoints to keep, and when ``last.pt`` is written inside an epoch.

    Attributes:
        monitor: Metric that decides ``best.pt``, the top-k and early stopping (one of
            :data:`train.metrics.MONITORED`).
        mode: ``max`` or ``min``: whether a larger monitored value is better.
        top_k: How many best epochs to keep as ``epoch=NNNN-<metric>=<value>.pt``
            besides ``best.pt`` and ``last.pt``; 0 keeps none.
        every_minutes: Also write ``last.pt`` inside an epoch once this many minutes
            passed since the last write (a recovery checkpoint: a kill loses at most
            this much training); 0 turns it off.
        every_steps: Also write ``last.pt`` every this many optimiser steps; 0 turns it off.
        signals: Signals that stop training after the current optimiser step with a
            checkpoint (``SIGINT``: status ``interrupted``, exit 130; the others:
            ``preempted``, exit 128 + the signal's number); empty: signals act as usual.
    """

    monitor: str = "val/accuracy"
    mode: str = "max"
    top_k: int = 3
    every_minutes: float = 10.0
    every_steps: int = 0
    signals: tuple[str, ...] = ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2")


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when the monitored metric stops improving.

    Attributes:
        patience: Epochs without an improvement larger than ``min_delta`` before
            stopping; 0 disables early stopping.
        min_delta: Smallest change of ``checkpoint.monitor`` that counts as improvement.
    """

    patience: int = 0
    min_delta: float = 0.0


@dataclass(frozen=True)
class InitConfig:
    """Initial weights (fine-tuning), instead of a random initialisation.

    Attributes:
        weights: A training checkpoint (``.pt``), a ``state_dict`` (``.pt``/``.pth``) or
            a ``.safetensors`` file, in ``model/`` or another run's ``checkpoints/``;
            relative paths are tried against the model folder, then the working
            directory. Without it, a network config's ``pretrained`` file is loaded
            in ``pretrained`` mode.
        mode: ``strict`` (every key must match), ``partial`` (load the keys whose
            name and shape match, report the rest) or ``pretrained`` (a foreign file,
            e.g. ImageNet weights: keys named as the network names them, the input
            convolution converted between 3 and 1 channels, a head of another class
            count left new). Matching nothing is an error in every mode.
    """

    weights: Optional[str] = None
    mode: str = "strict"


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning a pretrained backbone, and weight averaging.

    Attributes:
        backbone_lr_scale: Everything but the classifier head trains at
            ``optim.lr * backbone_lr_scale`` (the head at ``optim.lr``); 1 treats all alike.
        freeze_backbone_epochs: For this many first epochs only the head trains (the
            backbone's weights and batch-norm statistics stay as loaded).
        ema_decay: Keep an exponential moving average of the weights with this decay
            per step (e.g. 0.999); validation, ``best.pt`` and export then use the
            averaged weights. 0 disables it.
    """

    backbone_lr_scale: float = 1.0
    freeze_backbone_epochs: int = 0
    ema_decay: float = 0.0


@dataclass(frozen=True)
class WandbConfig:
    """Weights & Biases settings (used when ``log.trackers`` names ``wandb``).

    Attributes:
        project: The W&B project.
        entity: The W&B team or user; None for the account's default.
        mode: ``offline`` (the default: files under ``<run>/wandb/``, uploaded later
            with ``wandb sync``; no account or network needed) or ``online`` (needs
            ``wandb login`` beforehand). ``WANDB_MODE`` in the environment wins.
    """

    project: str = "imagepipe"
    entity: Optional[str] = None
    mode: str = "offline"


@dataclass(frozen=True)
class MlflowConfig:
    """MLflow settings (used when ``log.trackers`` names ``mlflow``).

    Attributes:
        tracking_uri: A tracking server (``http://host:5000``) or a store URI; None
            takes ``MLFLOW_TRACKING_URI`` from the environment, else the local file
            store ``<output>/mlruns``.
        experiment: The MLflow experiment (created when missing).
    """

    tracking_uri: Optional[str] = None
    experiment: str = "imagepipe"


@dataclass(frozen=True)
class LogConfig:
    """What a run records besides its per-epoch metrics (docs/training.md, "Watching a run").

    Attributes:
        every_steps: Log the training loss, learning rate, throughput and the weight
            and gradient norms per layer group every this many optimiser steps; 0
            picks about 100 points per run.
        histograms_every_steps: Weight and gradient histograms every this many
            steps (they cost); 0 is off.
        figures_every: Epochs between drawings of the confusion matrix, the
            validation images the model gets most wrong and ``curves.png``.
        figure_budget: Figures are skipped (until the last epoch) while drawing them
            would take more than this fraction of the run's time; 1 draws them every time.
        worst_images: Validation images in the "most wrong" grid.
        trackers: Where the curves go: ``tensorboard``, ``wandb``, ``mlflow`` (the last
            two need the ``trackers`` Pipfile category).
        wandb: See :class:`WandbConfig`.
        mlflow: See :class:`MlflowConfig`.
    """

    every_steps: int = 0
    histograms_every_steps: int = 0
    figures_every: int = 1
    figure_budget: float = 0.01
    worst_images: int = 16
    trackers: tuple[str, ...] = ("tensorboard",)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes.

    Attributes:
        network: Shared network config name (``shared_configs/networks/<network>.yaml``).
        epochs: Number of epochs.
        batch_size: Samples per optimiser step (per process under torchrun).
        seed: Seed of shuffling, augmentation, dropout and initialisation.
        amp: Mixed precision on GPU (bfloat16 where supported, else float16); ignored on CPU.
        channels_last: Train with the channels-last memory format (faster convolutions on
            recent GPUs with mixed precision; measure with ``pipenv run bench data``).
        compile: Compile the training step's model with ``torch.compile`` (the saved
            weights are the uncompiled network's).
        data: See :class:`DataConfig`.
        augment: See :class:`AugmentConfig`.
        optim: See :class:`OptimConfig`.
        schedule: See :class:`ScheduleConfig`.
        checkpoint: See :class:`CheckpointConfig`.
        early_stopping: See :class:`EarlyStoppingConfig`.
        init: See :class:`InitConfig`.
        finetune: See :class:`FinetuneConfig`.
        log: See :class:`LogConfig`.
    """

    network: str = "digits_cnn"
    epochs: int = 30
    batch_size: int = 64
    seed: int = 0
    amp: bool = True
    channels_last: bool = False
    compile: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    init: InitConfig = field(default_factory=InitConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as written to ``config.yaml`` and checkpoints."""
        out = asdict(self)
        out["optim"]["betas"] = list(self.optim.betas)
        out["checkpoint"]["signals"] = list(self.checkpoint.signals)
        out["log"]["trackers"] = list(self.log.trackers)
        return out

    def for_dev(self) -> TrainConfig:
        """The same config training and validating on ``data.dev_split``."""
        data = replace(self.data, train_split=self.data.dev_split, val_split=self.data.dev_split)
        return replace(self, data=data)


@dataclass(frozen=True)
class LoadedConfig:
    """A loaded training config and, for a run's ``config.yaml``, the pinned network.

    Attributes:
        config: The validated config.
        source: The file it came from (None for defaults only).
        network_hash: Hash of the network config the run used, when pinned.
        network_config: That network config, when pinned.
    """

    config: TrainConfig
    source: Optional[Path] = None
    network_hash: Optional[str] = None
    network_config: Optional[dict[str, Any]] = None


def load_train_config(path: Path | None = DEFAULT_CONFIG, overrides: Sequence[str] = ()) -> LoadedConfig:
    """Merge defaults, a YAML file and ``key=value`` overrides; validate; freeze.

    Args:
        path: A training config YAML, or a run's ``config.yaml`` (its pinned network
            keys are returned separately); None for the defaults alone.
        overrides: Dotted ``key=value`` strings, e.g. ``optim.lr=3e-4``.

    Returns:
        The frozen config and any pinned network config.

    Raises:
        UserError: Naming the file or the command line and the key path, for an
            unknown key (with the closest known key), a wrong type or an invalid value.
    """
    merged = OmegaConf.structured(TrainConfig)
    pinned: dict[str, Any] = {}
    required: list[str] = []
    if path is not None:
        shown = display_path(path)
        if not Path(path).is_file():
            raise UserError(f"{shown}: training config not found")
        loaded = load_yaml_mapping(Path(path), "training config keys")
        pinned = {key: loaded.pop(key) for key in PINNED_KEYS if key in loaded}
        required = _pop_required(loaded)
        merged = merge(merged, loaded, shown)
    given = parse_overrides(overrides)
    missing = [key for key in required if OmegaConf.select(given, key) is None]
    if missing:
        raise UserError(f"{display_path(path)}: {', '.join(missing)}: this config leaves the value to the command "
                        "line; add " + " ".join(f"{key}=<value>" for key in missing))
    merged = merge(merged, given, "command line")
    try:
        config: TrainConfig = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise UserError(f"{display_path(path) if path else 'config'}: {describe_config_error(exc)}") from None
    problems = validate(config)
    if problems:
        where = display_path(path) if path else "config"
        raise UserError(f"{where} (after command-line overrides): " + "; ".join(problems))
    return LoadedConfig(
        config=config,
        source=Path(path) if path is not None else None,
        network_hash=pinned.get("network_hash"),
        network_config=pinned.get("network_config"),
    )


REQUIRED = "???"
"""A value in a training config file that the command line must give (OmegaConf's mark for a missing value)."""


def _pop_required(mapping: dict[str, Any], prefix: str = "") -> list[str]:
    """Remove the keys whose value is :data:`REQUIRED` (at any depth); return their dotted paths."""
    required = []
    for key in list(mapping):
        value = mapping[key]
        if value == REQUIRED:
            del mapping[key]
            required.append(f"{prefix}{key}")
        elif isinstance(value, dict):
            required += _pop_required(value, f"{prefix}{key}.")
    return required


class _Problems(list):
    """The problems found so far, as ``key: problem``, and the checks that add to them."""

    def choice(self, key: str, value: str, allowed: Sequence[str]) -> None:
        if value not in allowed:
            self.append(f"{key}: {value!r} is not one of {list(allowed)}")

    def at_least(self, key: str, value: float, low: float) -> None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= low):
            self.append(f"{key}: must be >= {low}, got {value!r}")

    def within(self, key: str, value: float, ok: bool, interval: str) -> None:
        if not ok:
            self.append(f"{key}: must be in {interval}, got {value}")


def validate(config: TrainConfig) -> list[str]:
    """Every value out of range or not among the accepted choices, as ``key: problem``."""
    problems = _Problems()
    problems.at_least("epochs", config.epochs, 1)
    problems.at_least("batch_size", config.batch_size, 1)
    if not 0 <= config.seed < 2**32:
        problems.append(f"seed: must be within 0..{2**32 - 1} (what numpy and torch take), got {config.seed}")
    _check_data_and_augment(config, problems)
    _check_optim_and_schedule(config, problems)
    _check_checkpoints_and_rest(config, problems)
    return list(problems) + validate_log(config.log)


def _check_data_and_augment(config: TrainConfig, problems: _Problems) -> None:
    data, augment = config.data, config.augment
    problems.choice("data.on_unreadable", data.on_unreadable, ON_UNREADABLE)
    problems.at_least("data.num_workers", data.num_workers, 0)
    problems.choice("data.pack", data.pack, PACK_CHOICES)
    problems.choice("data.keep_on_gpu", data.keep_on_gpu, ("auto", "always", "never"))
    problems.within("data.gpu_memory_fraction", data.gpu_memory_fraction, 0 < data.gpu_memory_fraction <= 1, "(0, 1]")
    for key in ("rotation", "translate", "brightness", "contrast"):
        problems.at_least(f"augment.{key}", getattr(augment, key), 0)
    if not 0 <= augment.hflip <= 1:
        problems.append(f"augment.hflip: a probability in [0, 1], got {augment.hflip}")
    if not 0 < augment.scale_min <= augment.scale_max:
        problems.append(f"augment.scale_min/scale_max: need 0 < scale_min <= scale_max, got "
                        f"{augment.scale_min} and {augment.scale_max}")


def _check_optim_and_schedule(config: TrainConfig, problems: _Problems) -> None:
    optim, schedule = config.optim, config.schedule
    problems.choice("optim.name", optim.name, OPTIMIZERS)
    if not (math.isfinite(optim.lr) and optim.lr > 0):
        problems.append(f"optim.lr: must be positive, got {optim.lr}")
    problems.at_least("optim.weight_decay", optim.weight_decay, 0)
    problems.within("optim.momentum", optim.momentum, 0 <= optim.momentum < 1, "[0, 1)")
    betas = list(optim.betas)
    if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
        problems.append(f"optim.betas: two values, each in [0, 1), got {betas}")
    problems.at_least("optim.grad_clip_norm", optim.grad_clip_norm, 0)
    problems.within("optim.label_smoothing", optim.label_smoothing, 0 <= optim.label_smoothing < 1, "[0, 1)")
    problems.choice("schedule.name", schedule.name, SCHEDULES)
    problems.at_least("schedule.warmup_epochs", schedule.warmup_epochs, 0)
    problems.within("schedule.warmup_start", schedule.warmup_start, 0 < schedule.warmup_start <= 1, "(0, 1]")
    problems.within("schedule.min_lr_ratio", schedule.min_lr_ratio, 0 <= schedule.min_lr_ratio <= 1, "[0, 1]")
    problems.at_least("schedule.step_epochs", schedule.step_epochs, 1)
    if not (math.isfinite(schedule.gamma) and schedule.gamma > 0):
        problems.append(f"schedule.gamma: the step schedule's factor must be positive, got {schedule.gamma}")


def _check_checkpoints_and_rest(config: TrainConfig, problems: _Problems) -> None:
    checkpoint, finetune = config.checkpoint, config.finetune
    problems.choice("checkpoint.monitor", checkpoint.monitor, MONITORED)
    problems.choice("checkpoint.mode", checkpoint.mode, ("max", "min"))
    if checkpoint.monitor in MONITORED and checkpoint.mode in ("max", "min"):
        better = metric_spec(checkpoint.monitor).direction
        if checkpoint.mode != better:
            problems.append(f"checkpoint.mode: {checkpoint.mode!r}, but {checkpoint.monitor} is better when "
                            f"{'higher' if better == 'max' else 'lower'}; set checkpoint.mode={better}")
    problems.at_least("checkpoint.top_k", checkpoint.top_k, 0)
    problems.at_least("checkpoint.every_minutes", checkpoint.every_minutes, 0)
    problems.at_least("checkpoint.every_steps", checkpoint.every_steps, 0)
    signals = list(checkpoint.signals)
    unknown = [name for name in signals if name not in STOP_SIGNALS]
    if unknown or len(set(signals)) != len(signals):
        problems.append(f"checkpoint.signals: {signals}: each of {list(STOP_SIGNALS)} at most once")
    problems.at_least("early_stopping.patience", config.early_stopping.patience, 0)
    problems.at_least("early_stopping.min_delta", config.early_stopping.min_delta, 0)
    problems.choice("init.mode", config.init.mode, ("strict", "partial", "pretrained"))
    problems.at_least("finetune.backbone_lr_scale", finetune.backbone_lr_scale, 0)
    problems.at_least("finetune.freeze_backbone_epochs", finetune.freeze_backbone_epochs, 0)
    problems.within("finetune.ema_decay", finetune.ema_decay, 0 <= finetune.ema_decay < 1, "[0, 1)")


def validate_log(log: LogConfig) -> list[str]:
    """Every problem of the ``log`` section, as ``key: problem`` (tracker names are checked when a run starts)."""
    problems = [f"log.{key}: must be >= {low}, got {getattr(log, key)!r}"
                for key, low in (("every_steps", 0), ("histograms_every_steps", 0), ("figures_every", 1),
                                 ("worst_images", 0)) if getattr(log, key) < low]
    if not 0 < log.figure_budget <= 1:
        problems.append(f"log.figure_budget: must be in (0, 1], got {log.figure_budget}")
    repeated = sorted({name for name in log.trackers if list(log.trackers).count(name) > 1})
    if repeated:
        problems.append(f"log.trackers: {repeated} named more than once")
    if log.wandb.mode not in WANDB_MODES:
        problems.append(f"log.wandb.mode: {log.wandb.mode!r} is not one of {list(WANDB_MODES)}")
    return problems


def config_to_yaml(config: TrainConfig) -> str:
    """The config as YAML, as a run's ``config.yaml`` writes it (without the pinned network)."""
    return yaml_text(config.to_dict())
