"""The interface every network implements."""

from __future__ import annotations

import torch
from torch import nn

from networks.config import NetworkConfig


class ImageClassifier(nn.Module):
    """Base class of all networks: normalisation inside, features then head.

    Input: images ``(B, C, H, W)`` as the input contract delivers them, ``uint8``
    (or float) with values 0..255, channels in the contract's colour order (R, G, B
    for RGB). Output: class logits ``(B, num_classes)``; softmax is left to the
    caller (training's loss, deployment's exported graph).

    Normalisation ``(x / 255 - mean) / std`` runs in :meth:`normalize` from
    non-persistent buffers, so it is part of every exported graph, and no stage
    restates mean and std. Subclasses implement :meth:`forward_features` and
    :meth:`forward_head`.

    Fine-tuning uses two more hooks: :meth:`classifier_module` (the head, trained at
    the full learning rate while the rest may be frozen or slowed down) and
    :meth:`adapt_pretrained` (turning a weights file's keys into this network's).

    Args:
        config: The network config; ``config.input`` gives channels, mean and std.
    """

    weights_prefix = ""
    """Prefix of this network's weight names relative to a foreign (hub) weights file's."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        contract = config.input
        # (C,) -> (1, C, 1, 1) so the statistics broadcast over batch and pixels.
        mean = torch.tensor(contract.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(contract.std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("pixel_mean", mean * 255.0, persistent=False)
        self.register_buffer("pixel_std", std * 255.0, persistent=False)

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return self.config.num_classes

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Scale 0..255 images ``(B, C, H, W)`` to normalised float ``(B, C, H, W)``."""
        if images.dim() != 4 or images.shape[1] != self.pixel_mean.shape[1]:
            raise ValueError(
                f"expected images (B, {self.pixel_mean.shape[1]}, H, W) per the input contract, "
                f"got shape {tuple(images.shape)}"
            )
        return (images.to(self.pixel_mean.dtype) - self.pixel_mean) / self.pixel_std

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images ``(B, C, H, W)`` -> pooled features ``(B, F)``."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, F)`` -> logits ``(B, num_classes)``."""
        raise NotImplementedError

    def classifier_module(self) -> nn.Module:
        """The classifier head (by default the ``classifier`` attribute).

        Raises:
            NotImplementedError: When the network has no ``classifier`` attribute and
                does not override this method.
        """
        head = getattr(self, "classifier", None)
        if not isinstance(head, nn.Module):
            raise NotImplementedError(f"{type(self).__name__} names no classifier head: override classifier_module()")
        return head

    def adapt_pretrained(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A foreign weights file's tensors, named as this network's ``state_dict`` names them.

        The default adds :attr:`weights_prefix` to keys the network does not have as
        they are but has with the prefix.
        """
        if not self.weights_prefix:
            return dict(weights)
        own = set(self.state_dict())
        return {(f"{self.weights_prefix}{k}" if k not in own and f"{self.weights_prefix}{k}" in own else k): v
                for k, v in weights.items()}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)``, 0..255 -> logits ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(self.normalize(images)))
