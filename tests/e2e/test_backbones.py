"""Standard timm backbones round-trip: pretrained file -> train -> export (parity) -> evaluate.

Each backbone starts from a weights file the test makes by saving a freshly built
timm model (as a hub's ImageNet file would hold it: 1000 classes, 3 channels), so the
pretrained path (head replaced, provenance in the manifest and the card) runs for
real without a download.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from common.files import file_sha256
from common.images import load_samples
from common.lists import load_dataset, read_split
from common.model_card import read_card_file
from common.run_folder import RunFolder
from deploy.export import ExportOptions, export
from evaluate.evaluation import EvaluateOptions, evaluate
from networks import build_network
from networks.checkpoint import checkpoint_network_config, read_checkpoint
from train.config import load_train_config
from train.run import RunOptions, train

BACKBONES = ["resnet18", "mobilenetv3_small_100", "efficientnet_b0", "convnext_atto", "vit_tiny_patch16_224"]

NETWORK = """\
version: 1
arch: {{name: timm, params: {{model: {model}}}}}
num_classes: 10
pretrained: {model}.safetensors
input: {{color_mode: RGB, height: 32, width: 32, interpolation: bilinear,
        mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("model", BACKBONES)
def test_a_pretrained_backbone_trains_exports_and_evaluates(model, digits_root, tmp_path):
    torch.manual_seed(0)
    weights = Path(os.environ["IMAGEPIPE_MODEL"]) / f"{model}.safetensors"
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file(timm.create_model(model, num_classes=1000).state_dict(), str(weights))
    network = tmp_path / f"digits_{model}.yaml"
    network.write_text(NETWORK.format(model=model))

    config = load_train_config(overrides=[f"network={network}", f"data.dataset={digits_root}", "epochs=1",
                                          "batch_size=25", "data.train_split=dev", "data.val_split=dev"])
    run = train(config, RunOptions(progress=False, device="cpu"))
    manifest = RunFolder(run.run_dir).read_manifest()
    assert manifest.init["sha256"] == file_sha256(weights) and manifest.init["mode"] == "pretrained"
    assert {entry.split(":")[0].rsplit(".", 1)[-1] for entry in manifest.init["report"]["reshaped"]} == {"weight", "bias"}
    assert len(manifest.init["report"]["loaded"]) > 10  # the backbone came from the file

    exported = export(ExportOptions(run=str(run.run_dir), network_config=network, parity_samples=64))
    assert exported.parity.passed and exported.parity.max_abs_diff <= 1e-4 and exported.parity.images == 64
    card = read_card_file(exported.model.with_suffix(".json"))
    assert card.source.pretrained == {"file": str(weights), "sha256": file_sha256(weights)}
    assert card.network.arch == "timm" and card.network.config["arch"]["params"]["model"] == model

    result = evaluate(EvaluateOptions(model=exported.model, list=digits_root / "lists" / "test.txt",
                                      progress=False, bootstrap=0))
    checkpoint = read_checkpoint(run.run_dir / "checkpoints" / "best.pt")
    torch_network = build_network(checkpoint_network_config(checkpoint, "best.pt")).eval()
    torch_network.load_state_dict(checkpoint["model"])
    dataset = load_dataset(digits_root)
    images, labels, _ = load_samples(dataset, read_split(dataset, "test"), torch_network.config.input)
    with torch.no_grad():
        torch_accuracy = float((torch_network(torch.from_numpy(images)).argmax(dim=1).numpy() == labels).mean())
    assert result.metrics["samples"] == 360
    assert abs(result.metrics["accuracy"] - torch_accuracy) <= 1 / 360  # what the trained network computes
