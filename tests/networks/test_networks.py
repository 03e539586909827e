"""Every registered network: same interface, normalisation inside, shapes right."""

from __future__ import annotations

import pytest
import torch

from common.contract import InputContract
from common.errors import UserError
from networks import ImageClassifier, build_network, list_networks, load_network_config, register_network
from networks.config import ArchConfig, NetworkConfig

TINY_PARAMS = {"small_cnn": {"channels": [4, 8]}, "resnet": {"widths": [4, 8], "blocks": [1, 1]}, "timm": {"model": "test_resnet"}}


def tiny_config(arch: str, color_mode: str = "L", height: int = 12, width: int = 10, **params) -> NetworkConfig:
    channels = 1 if color_mode == "L" else 3
    contract = InputContract(color_mode, height, width, "bilinear", (0.3,) * channels, (0.4,) * channels)
    return NetworkConfig(name="tiny", arch=ArchConfig(arch, {**TINY_PARAMS.get(arch, {}), **params}),
                         num_classes=5, input=contract)


def test_the_registry_holds_the_built_in_architectures():
    assert {"small_cnn", "resnet", "timm"} <= set(list_networks())
    assert set(TINY_PARAMS) == set(list_networks()), "give every registered network tiny test parameters"


@pytest.mark.parametrize("arch", list_networks())
@pytest.mark.parametrize("color_mode", ["L", "RGB"])
def test_output_shape_finite_and_trainable(arch, color_mode):
    torch.manual_seed(0)
    network = build_network(tiny_config(arch, color_mode))
    assert isinstance(network, ImageClassifier)
    images = torch.randint(0, 256, (3, 1 if color_mode == "L" else 3, 12, 10), dtype=torch.uint8)
    logits = network(images)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    logits.logsumexp(1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in network.parameters())


@pytest.mark.parametrize("arch", list_networks())
def test_uint8_and_float_inputs_agree_and_normalisation_is_inside(arch):
    network = build_network(tiny_config(arch)).eval()
    images = torch.randint(0, 256, (2, 1, 12, 10), dtype=torch.uint8)
    torch.testing.assert_close(network(images), network(images.float()))
    normalised = network.normalize(images)
    torch.testing.assert_close(normalised, (images.float() / 255 - 0.3) / 0.4)
    state = network.state_dict()
    assert "pixel_mean" not in state and "pixel_std" not in state, "statistics come from the config, not weights"


@pytest.mark.parametrize("name", ["digits_cnn", "digits_resnet", "digits_resnet18"])
def test_shared_configs_build(name):
    config = load_network_config(name)
    network = build_network(config).eval()
    assert network(torch.zeros(2, *config.input.shape, dtype=torch.uint8)).shape == (2, 10)


def test_wrong_channel_count_is_a_clear_error():
    network = build_network(tiny_config("small_cnn", "RGB"))
    with pytest.raises(ValueError, match=r"expected images \(B, 3, H, W\) per the input contract, got shape \(2, 1, 12, 10\)"):
        network(torch.zeros(2, 1, 12, 10))


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(UserError, match=r"arch\.name: unknown network 'vit'; registered: \[.*'resnet', 'small_cnn'"):
        build_network(tiny_config("vit"))


def test_unknown_and_missing_parameters_are_named():
    with pytest.raises(UserError, match=r"arch\.params: unknown parameter\(s\) \['depth'\] for network 'small_cnn'; it takes \['channels', 'dropout'\]"):
        build_network(tiny_config("small_cnn", depth=3))


def test_bad_parameter_values_are_user_errors():
    with pytest.raises(UserError, match=r"arch\.params: widths and blocks need the same"):
        build_network(tiny_config("resnet", blocks=[1]))
    with pytest.raises(UserError, match=r"arch\.params: dropout must be in \[0, 1\)"):
        build_network(tiny_config("small_cnn", dropout=1.5))


def test_duplicate_names_are_refused():
    class Again(ImageClassifier):
        pass

    with pytest.raises(ValueError, match=r"'small_cnn' is registered twice: by networks\.small_cnn\.SmallCNN and by"):
        register_network("small_cnn")(Again)
    assert "small_cnn" in list_networks()


def test_only_image_classifiers_can_be_registered():
    with pytest.raises(TypeError, match="must decorate a subclass of ImageClassifier"):
        register_network("plain")(torch.nn.Linear)


def test_a_new_network_registers_and_builds_without_touching_the_stages():
    @register_network("test_linear_probe")
    class LinearProbe(ImageClassifier):
        def __init__(self, config: NetworkConfig, hidden: int):
            super().__init__(config)
            self.hidden = torch.nn.Linear(config.input.channels * config.input.height * config.input.width, hidden)
            self.classifier = torch.nn.Linear(hidden, config.num_classes)

        def forward_features(self, x):
            return torch.relu(self.hidden(torch.flatten(x, 1)))  # (B, C, H, W) -> (B, C*H*W) -> (B, hidden)

        def forward_head(self, features):
            return self.classifier(features)

    try:
        with pytest.raises(UserError, match=r"missing parameter\(s\) \['hidden'\]"):
            build_network(tiny_config("test_linear_probe"))
        network = build_network(tiny_config("test_linear_probe", hidden=7))
        assert network(torch.zeros(4, 1, 12, 10, dtype=torch.uint8)).shape == (4, 5)
    finally:
        from networks import registry

        registry.NETWORKS.unregister("test_linear_probe")
