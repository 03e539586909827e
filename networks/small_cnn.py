"""A small VGG-style convolutional network, the default for the bundled digits."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from networks.base import ImageClassifier
from networks.config import NetworkConfig
from networks.registry import register_network


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (no bias), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@register_network("small_cnn")
class SmallCNN(ImageClassifier):
    """Stages of two 3x3 conv-BN-ReLU layers, 2x2 max-pooling between stages,
    global average pooling and a dropout + linear head.

    Args:
        config: The network config.
        channels: Output channels of each stage; the spatial size halves between stages.
        dropout: Dropout probability before the linear head.
    """

    def __init__(self, config: NetworkConfig, channels: Sequence[int] = (32, 64, 128), dropout: float = 0.2):
        super().__init__(config)
        if not channels or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty list of positive integers, got {list(channels)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width = config.input.channels
        for index, out in enumerate(int(c) for c in channels):
            if index > 0:
                layers.append(nn.MaxPool2d(2))
            layers += [conv_bn_relu(width, out), conv_bn_relu(out, out)]
            width = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images ``(B, C, H, W)`` -> features ``(B, channels[-1])``."""
        x = self.pool(self.features(x))
        return torch.flatten(x, 1)  # (B, F, 1, 1) -> (B, F)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``(B, F)`` -> logits ``(B, num_classes)``."""
        return self.classifier(self.dropout(features))
