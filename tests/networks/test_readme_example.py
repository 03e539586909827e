"""The README's "Bring your own network" example works as written."""

from __future__ import annotations

import re
import types

import torch

from common.contract import InputContract
from common.paths import PROJECT_ROOT
from networks import build_network, list_networks, load_network_config, registry
from networks.config import ArchConfig, NetworkConfig


def test_readme_network_example_registers_and_builds():
    readme = (PROJECT_ROOT / "README.md").read_text()
    code = re.search(r"```python\n(# networks/mlp\.py\n.*?)```", readme, re.S).group(1)
    module = types.ModuleType("networks.readme_mlp")
    try:
        exec(compile(code, "README.md", "exec"), module.__dict__)
        assert "mlp" in list_networks()
        contract = InputContract("L", 16, 16, "bilinear", (0.305,), (0.319,))
        config = NetworkConfig(name="digits_mlp", arch=ArchConfig("mlp", {"hidden": 128}), num_classes=10, input=contract)
        network = build_network(config)
        assert network(torch.zeros(3, 1, 16, 16, dtype=torch.uint8)).shape == (3, 10)
    finally:
        registry.NETWORKS.unregister("mlp")


def test_readme_timm_config_builds_the_backbone_it_names(tmp_path):
    readme = (PROJECT_ROOT / "README.md").read_text()
    text = re.search(r"```yaml\n# shared_configs/networks/flowers_resnet18\.yaml\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "flowers_resnet18.yaml").write_text(text)
    config = load_network_config(tmp_path / "flowers_resnet18.yaml")
    assert config.pretrained == "resnet18.safetensors" and config.input.shape == (3, 224, 224)
    network = build_network(config).eval()
    assert network.model.default_cfg["architecture"] == "resnet18"
    assert network(torch.zeros(1, 3, 224, 224, dtype=torch.uint8)).shape == (1, 5)
