"""timm backbones behind the ImageClassifier interface, and pretrained weights from a local file."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from common.contract import InputContract
from common.errors import UserError
from networks import build_network
from networks.checkpoint import load_weights, read_state_dict
from networks.config import ArchConfig, NetworkConfig
from networks.timm_backbone import TimmClassifier

BACKBONES = ["resnet18", "mobilenetv3_small_100", "efficientnet_b0", "convnext_atto", "vit_tiny_patch16_224"]


def timm_config(model: str, color_mode: str = "RGB", size: int = 64, classes: int = 7, **params) -> NetworkConfig:
    channels = 1 if color_mode == "L" else 3
    contract = InputContract(color_mode, size, size, "bicubic", (0.45,) * channels, (0.25,) * channels)
    return NetworkConfig(name=f"{model}_test", arch=ArchConfig("timm", {"model": model, **params}),
                         num_classes=classes, input=contract)


@pytest.mark.parametrize("model", BACKBONES)
def test_each_backbone_is_the_timm_model_behind_the_same_interface(model):
    torch.manual_seed(0)
    network = build_network(timm_config(model)).eval()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    logits = network(images)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    features = network.forward_features(network.normalize(images))
    assert features.ndim == 2 and features.shape[0] == 2  # (B, F): pooled, pre-logits
    torch.testing.assert_close(network.forward_head(features), logits)
    torch.testing.assert_close(network.model(network.normalize(images)), logits)  # timm's own forward, unchanged
    assert network.classifier_module() is network.model.get_classifier()


def test_grayscale_input_and_a_vit_built_for_the_contract_size():
    gray = build_network(timm_config("resnet18", "L", size=40)).eval()
    assert gray.model.conv1.weight.shape[1] == 1
    assert gray(torch.zeros(3, 1, 40, 40, dtype=torch.uint8)).shape == (3, 7)
    vit = build_network(timm_config("vit_tiny_patch16_224", size=48)).eval()
    assert tuple(vit.model.patch_embed.img_size) == (48, 48)
    assert vit(torch.zeros(1, 3, 48, 48, dtype=torch.uint8)).shape == (1, 7)


def test_an_unknown_model_names_close_matches():
    with pytest.raises(UserError, match=r"arch\.params\.model: 'resnet81' is not a timm model; close matches: \[.*'resnet18'"):
        build_network(timm_config("resnet81"))
    with pytest.raises(UserError, match=r"unknown parameter\(s\) \['depth'\] for network 'timm'"):
        build_network(timm_config("resnet18", depth=3))


def test_the_suggested_contract_is_the_pretrained_config():
    contract = TimmClassifier.suggested_contract({"model": "resnet18"})
    assert contract == InputContract("RGB", 224, 224, "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    gray = TimmClassifier.suggested_contract({"model": "resnet18"}, "L")
    assert gray.channels == 1 and gray.mean[0] == pytest.approx((0.485 + 0.456 + 0.406) / 3)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_pretrained_weights_load_with_a_new_head_and_adapted_stem(tmp_path, suffix):
    torch.manual_seed(1)
    source = timm.create_model("resnet18", num_classes=1000, in_chans=3)  # as a hub's ImageNet file holds it
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        save_file(source.state_dict(), str(path))
    else:
        torch.save({"state_dict": source.state_dict()}, path)
    network = build_network(timm_config("resnet18", "L", classes=4))
    head_before = network.model.fc.weight.detach().clone()
    report = load_weights(network, read_state_dict(path), mode="pretrained", source=path.name)
    assert report.reshaped == ["model.fc.bias: (1000,) vs (4,)", "model.fc.weight: (1000, 512) vs (4, 512)"]
    assert report.adapted == ["model.conv1.weight: (64, 3, 7, 7) -> (64, 1, 7, 7)"]
    assert not report.missing
    assert not report.unexpected and len(report.loaded) == len(network.state_dict()) - 2
    torch.testing.assert_close(network.model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    torch.testing.assert_close(network.model.conv1.weight, source.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(network.model.fc.weight, head_before)  # the head for 4 classes stays new


def test_a_vit_pretrained_at_224_loads_into_a_smaller_contract(tmp_path):
    source = timm.create_model("vit_tiny_patch16_224", num_classes=1000)
    save_file(source.state_dict(), str(tmp_path / "vit.safetensors"))
    network = build_network(timm_config("vit_tiny_patch16_224", size=64))
    report = load_weights(network, read_state_dict(tmp_path / "vit.safetensors"), mode="pretrained")
    assert "model.pos_embed" in report.loaded  # resampled from 14x14 to 4x4 patches by timm's own filter
    assert {r.split(":")[0] for r in report.reshaped} == {"model.head.weight", "model.head.bias"}


def test_a_weights_file_that_matches_nothing_or_is_not_weights_is_refused(tmp_path):
    network = build_network(timm_config("resnet18"))
    save_file({"encoder.layer.0.weight": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(UserError, match=r"other\.safetensors: no key matches the network by name and shape"):
        load_weights(network, read_state_dict(tmp_path / "other.safetensors"), mode="pretrained",
                     source="other.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(UserError, match=r"broken\.safetensors: not a readable safetensors file"):
        read_state_dict(tmp_path / "broken.safetensors")
    with pytest.raises(UserError, match=r"missing\.safetensors: weights file not found"):
        read_state_dict(tmp_path / "missing.safetensors")
