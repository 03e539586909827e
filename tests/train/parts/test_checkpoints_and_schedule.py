"""The training loop's parts: schedule, checkpoint bookkeeping, sampling order, augmentation, weights."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from common.errors import UserError
from common.integrity import verify_sha256
from common.paths import PROJECT_ROOT
from common.run_folder import RunFolder
from networks import build_network, load_network_config
from networks.checkpoint import load_weights, read_checkpoint, read_state_dict
from train.loop.augment import BatchAugment
from train.resilience.checkpoints import CheckpointKeeper, save_checkpoint
from train.resilience.early_stopping import EarlyStopping
from train.config import AugmentConfig, load_train_config
from train.data.loading import epoch_order, steps_per_epoch
from train.loop.optim import lr_factor


def test_cosine_schedule_with_linear_warmup():
    config = load_train_config(None, ["epochs=10", "schedule.warmup_epochs=2", "schedule.warmup_start=0.1"]).config
    factors = [lr_factor(step, 5, config) for step in range(50)]
    assert factors[0] == pytest.approx(0.1) and factors[5] == pytest.approx(0.55)
    assert factors[10] == pytest.approx(1.0)  # warmup done, cosine starts at the peak
    assert factors[30] == pytest.approx(0.5 * (1 + math.cos(math.pi * 20 / 40)))
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))  # then only decreases


def test_step_and_constant_schedules():
    step = load_train_config(None, ["schedule.name=step", "schedule.step_epochs=3", "schedule.gamma=0.5"]).config
    assert [lr_factor(e * 4, 4, step) for e in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    constant = load_train_config(None, ["schedule.name=constant"]).config
    assert {lr_factor(s, 4, constant) for s in range(100)} == {1.0}


def test_keeper_keeps_the_top_k_and_the_best(tmp_path):
    keeper = CheckpointKeeper(tmp_path, "val/accuracy", "max", top_k=2)
    for epoch, value in enumerate([0.5, 0.7, 0.6, 0.9, 0.8], start=1):
        keeper.write(keeper.decide(epoch, value), {"epoch": epoch})
    kept = sorted(p.name for p in tmp_path.glob("epoch=*.pt"))
    assert kept == ["epoch=0004-val_accuracy=0.9000.pt", "epoch=0005-val_accuracy=0.8000.pt"]
    assert torch.load(tmp_path / "best.pt", weights_only=True) == {"epoch": 4}
    assert torch.load(tmp_path / "last.pt", weights_only=True) == {"epoch": 5}
    assert keeper.best == {"epoch": 4, "value": 0.9, "metric": "val/accuracy"}


def test_keeper_restores_and_removes_files_newer_than_its_state(tmp_path):
    keeper = CheckpointKeeper(tmp_path, "val/loss", "min", top_k=2)
    keeper.write(keeper.decide(1, 0.5), {"epoch": 1})
    keeper.write(keeper.decide(2, 0.6), {"epoch": 2})
    state = keeper.state_dict()
    keeper.write(keeper.decide(3, 0.4), {"epoch": 3})  # replaces epoch 2's file, then the process "crashed"
    (tmp_path / ".last.pt.abc.tmp").write_bytes(b"half")
    restored = CheckpointKeeper(tmp_path, "val/loss", "min", top_k=2)
    restored.load_state_dict(state)
    assert sorted(p.name for p in tmp_path.glob("epoch=*.pt")) == ["epoch=0001-val_loss=0.5000.pt"]
    assert [entry["epoch"] for entry in restored.kept] == [1]  # epoch 2's file is gone, so is its entry
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_kill_right_after_last_pt_is_repaired_from_it_on_resume(tmp_path):
    keeper = CheckpointKeeper(tmp_path, "val/loss", "min", top_k=2)
    keeper.write(keeper.decide(1, 0.5), {"epoch": 1})
    keeper.decide(2, 0.4)  # epoch 2 is the best and a top-k epoch ...
    state = keeper.state_dict()
    save_checkpoint({"epoch": 2}, tmp_path / "last.pt")  # ... but the process died after writing last.pt
    restored = CheckpointKeeper(tmp_path, "val/loss", "min", top_k=2)
    restored.load_state_dict(state, epoch=2)
    assert torch.load(tmp_path / "best.pt", weights_only=True) == {"epoch": 2}
    assert torch.load(tmp_path / "epoch=0002-val_loss=0.4000.pt", weights_only=True) == {"epoch": 2}
    assert [entry["epoch"] for entry in restored.kept] == [1, 2]
    for name in ("best.pt", "epoch=0002-val_loss=0.4000.pt"):
        assert verify_sha256(tmp_path / name, required=True)


def test_early_stopping_counts_epochs_without_improvement():
    stopper = EarlyStopping(patience=2, min_delta=0.01, mode="max")
    assert [stopper.update(v) for v in [0.5, 0.505, 0.6, 0.6, 0.609]] == [False, False, False, False, True]
    assert EarlyStopping(patience=0, min_delta=0, mode="min").update(float("nan")) is False


def test_epoch_order_is_seeded_by_epoch_and_shards_cover_everything():
    assert torch.equal(epoch_order(50, 3, 7, True), epoch_order(50, 3, 7, True))
    assert not torch.equal(epoch_order(50, 3, 7, True), epoch_order(50, 3, 8, True))
    shards = [epoch_order(11, 0, 0, True, rank=r, world_size=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 6
    assert set(torch.cat(shards).tolist()) == set(range(11))
    tiny = [epoch_order(3, 0, 0, True, rank=r, world_size=8) for r in range(8)]  # fewer samples than processes
    assert [len(t) for t in tiny] == [1] * 8 and set(torch.cat(tiny).tolist()) == {0, 1, 2}
    assert steps_per_epoch(65, 32, 1) == 2  # a last batch of one sample is dropped
    assert steps_per_epoch(66, 32, 1) == 3


def test_augmentation_is_reproducible_and_changes_only_when_enabled():
    images = torch.randint(0, 256, (4, 1, 8, 10), dtype=torch.uint8)
    off = BatchAugment(AugmentConfig())
    assert off(images, torch.Generator().manual_seed(0)) is images
    on = BatchAugment(AugmentConfig(rotation=15, translate=0.1, scale_min=0.9, scale_max=1.1, hflip=0.5,
                                    brightness=0.2, contrast=0.2))
    a = on(images, torch.Generator().manual_seed(1))
    b = on(images, torch.Generator().manual_seed(1))
    assert a.shape == (4, 1, 8, 10) and a.dtype == torch.float32 and torch.equal(a, b)
    assert not torch.equal(a, images.float()) and a.min() >= 0 and a.max() <= 255


def test_identity_affine_leaves_images_unchanged():
    images = torch.randint(0, 256, (2, 3, 6, 9), dtype=torch.uint8)
    flip_never = BatchAugment(AugmentConfig(hflip=1e-9))
    torch.testing.assert_close(flip_never(images, torch.Generator().manual_seed(0)), images.float(), atol=1e-3,
                               rtol=0)


def test_run_folders_are_never_reused(tmp_path):
    first, second = RunFolder.create("exp", tmp_path).path, RunFolder.create("exp", tmp_path).path
    assert first != second and first.is_dir() and second.is_dir()
    with pytest.raises(UserError, match="use letters, digits"):
        RunFolder.create("../escape", tmp_path)


def test_partial_load_reports_loaded_missing_unexpected_and_reshaped():
    source = build_network(load_network_config("digits_cnn"))
    weights = dict(source.state_dict())
    weights["extra.weight"] = torch.zeros(3)
    target_config = load_network_config("digits_cnn")
    from dataclasses import replace

    from networks.config import ArchConfig

    target = build_network(replace(target_config, arch=ArchConfig("small_cnn", {"channels": [32, 64, 256]})))
    report = load_weights(target, {f"module.{k}": v for k, v in weights.items()}, mode="partial")
    assert "features.0.0.weight" in report.loaded and report.unexpected == ["extra.weight"]
    assert any(m.startswith("features.6.0.weight: (128, 64, 3, 3) vs (256, 64, 3, 3)") for m in report.reshaped)
    assert torch.equal(target.state_dict()["features.0.0.weight"], weights["features.0.0.weight"])
    with pytest.raises(UserError, match=r"do not match the network \(loaded \d+; unexpected 1 .*reshaped"):
        load_weights(target, weights, mode="strict")
    resnet = build_network(load_network_config("digits_resnet"))
    foreign = {k: v for k, v in weights.items() if not k.startswith("classifier.")}  # only the head is shared
    with pytest.raises(UserError, match=r"no key matches the network by name and shape \(loaded 0; missing"):
        load_weights(resnet, foreign, mode="partial")


def test_corrupt_and_foreign_checkpoints_give_clear_errors(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(UserError, match=r"junk\.pt: not a readable checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(UserError, match=r"other\.pt: not a checkpoint written by this project's training stage"):
        read_checkpoint(tmp_path / "other.pt")
    torch.save({"w": torch.zeros(2), "fn": print}, tmp_path / "code.pt")
    with pytest.raises(UserError, match=r"code\.pt: refused by torch\.load\(weights_only=True\)"):
        read_state_dict(tmp_path / "code.pt")
    with pytest.raises(UserError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "missing.pt")


@pytest.mark.slow
def test_a_kill_during_checkpoint_save_leaves_the_previous_last_pt(tmp_path):
    """A process dies in the middle of writing last.pt; the old last.pt must still load."""
    target = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.arange(4.0)}, target)
    script = textwrap.dedent(f"""
        import os, torch
        from train.resilience.checkpoints import save_checkpoint

        def dying_save(obj, stream):
            stream.write(b"PK" + b"\\0" * 1000)  # the start of a zip, then the process is killed
            stream.flush()
            os._exit(9)

        torch.save = dying_save
        save_checkpoint({{"epoch": 2, "w": torch.zeros(4)}}, __import__("pathlib").Path({str(target)!r}))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env={**os.environ}, timeout=120)
    assert result.returncode == 9
    loaded = torch.load(target, weights_only=True)
    assert loaded["epoch"] == 1 and torch.equal(loaded["w"], torch.arange(4.0))
