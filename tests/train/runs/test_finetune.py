"""Fine-tuning in whole runs: best.pt and the export use the averaged weights; each setting resumes bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.run_folder import RunStatus
from networks.checkpoint import read_checkpoint
from train.loop.hooks import Hook
from train.run import RunOptions, resume, train

QUIET = RunOptions(progress=False, device="cpu")
DEV = ("data.train_split=dev", "data.val_split=dev")


@pytest.mark.slow
def test_with_averaging_best_pt_and_export_use_the_averaged_weights(fast_config, tiny_network):
    from deploy.export import ExportOptions, export
    from deploy.parity import onnx_predictor
    from networks import build_network
    from networks.checkpoint import checkpoint_network_config

    result = train(fast_config("finetune.ema_decay=0.9", "epochs=2", *DEV), QUIET)
    checkpoint = read_checkpoint(result.run_dir / "checkpoints" / "best.pt")
    assert not torch.equal(checkpoint["model"]["classifier.weight"], checkpoint["model_raw"]["classifier.weight"])
    exported = export(ExportOptions(run=str(result.run_dir), name="ema", network_config=tiny_network))
    images = np.random.default_rng(0).integers(0, 256, (8, 1, 8, 8), dtype=np.uint8)
    onnx = onnx_predictor(exported.model)(images)
    config = checkpoint_network_config(checkpoint, "best.pt")
    outputs = {}
    for key in ("model", "model_raw"):
        network = build_network(config).eval()
        network.load_state_dict(checkpoint[key])
        with torch.no_grad():
            outputs[key] = torch.softmax(network(torch.from_numpy(images)), dim=1).numpy()
    assert np.abs(onnx - outputs["model"]).max() < 1e-4 < np.abs(onnx - outputs["model_raw"]).max()


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["finetune.backbone_lr_scale=0.3", "finetune.freeze_backbone_epochs=2",
                                     "finetune.ema_decay=0.8"])
def test_a_stopped_run_resumes_bit_for_bit_with_each_setting(fast_config, setting):
    config = fast_config(setting, "epochs=4", "augment.rotation=10", *DEV)
    straight = train(config, QUIET)

    class StopAfterTwo(Hook):
        name = "stop_after_two"

        def after_epoch(self, run, row):
            if row["epoch"] == 2:
                run.request_stop(RunStatus.PRUNED, "pruned by the test")

    stopped = train(config, RunOptions(progress=False, device="cpu", hooks=(StopAfterTwo(),)))
    assert stopped.status == "pruned" and stopped.epochs_completed == 2
    resumed = resume(str(stopped.run_dir), options=QUIET)
    assert resumed.epochs_completed == 4
    a = read_checkpoint(straight.run_dir / "checkpoints" / "last.pt")
    b = read_checkpoint(resumed.run_dir / "checkpoints" / "last.pt")
    for key in ("model", "model_raw"):
        if key in a:
            assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), f"{key} differs after resume"
    assert [r["val/loss"] for r in a["history"]] == [r["val/loss"] for r in b["history"]]
