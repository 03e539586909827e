"""Fine-tuning's parts, without a run: backbone learning-rate scale, a frozen backbone, weight averaging, settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.errors import UserError
from networks import load_network_config
from train.data.loading import load_training_data
from train.process.distributed import Processes
from train.loop.trainer import Trainer

DEV = ("data.train_split=dev", "data.val_split=dev")


def build_trainer(loaded) -> Trainer:
    config = loaded.config
    network_config = load_network_config(config.network)
    return Trainer(config, network_config, load_training_data(config, network_config, Processes()), Processes(),
                   torch.device("cpu"))


def one_batch(trainer: Trainer) -> tuple[torch.Tensor, torch.Tensor]:
    return trainer.data.train.images[:32], trainer.data.train.labels[:32]


def test_the_head_trains_at_the_full_rate_and_the_backbone_at_a_fraction(fast_config):
    trainer = build_trainer(fast_config("finetune.backbone_lr_scale=0.1", "optim.lr=0.01", *DEV))
    trainer.train_step(*one_batch(trainer), lr=0.01)
    head = {id(p) for p in trainer.network.classifier_module().parameters()}
    rates = {}
    for group in trainer.optimizer.param_groups:
        for parameter in group["params"]:
            rates["head" if id(parameter) in head else "backbone"] = group["lr"]
    assert rates == {"head": 0.01, "backbone": pytest.approx(0.001)}
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(list(trainer.network.parameters()))


def test_a_frozen_backbone_keeps_its_weights_and_statistics_while_the_head_learns(fast_config):
    trainer = build_trainer(fast_config("finetune.freeze_backbone_epochs=1", *DEV))
    before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    trainer.train_epoch()
    after = trainer.network.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"classifier.weight", "classifier.bias"}  # batch-norm running statistics included
    trainer.train_epoch()  # epoch 2: the backbone trains too
    assert not torch.equal(before["features.0.0.weight"], trainer.network.state_dict()["features.0.0.weight"])
    assert all(p.requires_grad for p in trainer.network.parameters())


def test_the_weight_average_is_the_exponential_average_of_the_steps(fast_config):
    decay = 0.5
    trainer = build_trainer(fast_config(f"finetune.ema_decay={decay}", *DEV))
    images, labels = one_batch(trainer)
    expected = None
    for _ in range(3):
        trainer.train_step(images, labels, lr=0.01)
        weights = trainer.network.state_dict()
        expected = {k: v.clone().double() for k, v in weights.items()} if expected is None else {
            k: decay * expected[k] + (1 - decay) * weights[k].double() for k in weights}
    averaged = trainer.evaluated_network.state_dict()
    for key, value in expected.items():
        if averaged[key].is_floating_point():  # (the integer batch counters are not averaged)
            np.testing.assert_allclose(averaged[key].double().numpy(), value.numpy(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(averaged["classifier.weight"], trainer.network.state_dict()["classifier.weight"])


def test_fine_tuning_settings_are_validated(fast_config):
    with pytest.raises(UserError, match=r"finetune\.ema_decay: must be in \[0, 1\), got 1\.5"):
        fast_config("finetune.ema_decay=1.5")
    with pytest.raises(UserError, match=r"finetune\.freeze_backbone_epochs: must be >= 0"):
        fast_config("finetune.freeze_backbone_epochs=-1")
