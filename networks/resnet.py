"""A small residual network (ResNet with basic blocks), sized for small images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from networks.base import ImageClassifier
from networks.config import NetworkConfig
from networks.registry import register_network


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first convolution (2 halves the spatial size).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> ``(B, C_out, H / stride, W / stride)``."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


@register_network("resnet")
class ResNet(ImageClassifier):
    """A 3x3 stem, stages of basic blocks (stride 2 at the start of every stage after
    the first), global average pooling and a dropout + linear head.

    Args:
        config: The network config.
        widths: Channels of each stage.
        blocks: Number of basic blocks in each stage (same length as ``widths``).
        dropout: Dropout probability before the linear head.
    """

    def __init__(
        self,
        config: NetworkConfig,
        widths: Sequence[int] = (32, 64, 128),
        blocks: Sequence[int] = (2, 2, 2),
        dropout: float = 0.0,
    ):
        super().__init__(config)
        if not widths or len(widths) != len(blocks):
            raise ValueError(f"widths and blocks need the same, non-zero length; got {list(widths)} and {list(blocks)}")
        if any(int(w) < 1 for w in widths) or any(int(b) < 1 for b in blocks):
            raise ValueError("widths and blocks must be positive integers")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.stem = nn.Sequential(
            nn.Conv2d(config.input.channels, int(widths[0]), 3, padding=1, bias=False),
            nn.BatchNorm2d(int(widths[0])),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        width = int(widths[0])
        for index, (out, count) in enumerate(zip(widths, blocks)):
            layers = [BasicBlock(width, int(out), stride=1 if index == 0 else 2)]
            layers += [BasicBlock(int(out), int(out)) for _ in range(int(count) - 1)]
            stages.append(nn.Sequential(*layers))
            width = int(out)
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images ``(B, C, H, W)`` -> features ``(B, widths[-1])``."""
        x = self.pool(self.stages(self.stem(x)))
        return torch.flatten(x, 1)  # (B, F, 1, 1) -> (B, F)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``(B, F)`` -> logits ``(B, num_classes)``."""
        return self.classifier(self.dropout(features))
