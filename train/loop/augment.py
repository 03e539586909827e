"""Batch augmentation on tensors, applied to training batches only.

Works on a whole batch at once on the training device, with an explicit random
generator, so an epoch's augmentation is reproducible (and identical after a resume).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from train.config import AugmentConfig


class BatchAugment:
    """Random affine (rotation, shift, zoom, horizontal flip) and photometric jitter.

    Geometric changes resample bilinearly and fill uncovered pixels with 0 (black).

    Args:
        config: The augmentation settings.
    """

    def __init__(self, config: AugmentConfig):
        self.config = config

    @property
    def geometric(self) -> bool:
        """Whether any geometric augmentation is on."""
        c = self.config
        return c.rotation > 0 or c.translate > 0 or c.scale_min != 1 or c.scale_max != 1 or c.hflip > 0

    @property
    def enabled(self) -> bool:
        """Whether the augmentation changes anything."""
        return self.geometric or self.config.brightness > 0 or self.config.contrast > 0

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch.

        Args:
            images: ``(B, C, H, W)``, values 0..255 (uint8 or float).
            generator: Random generator on the images' device.

        Returns:
            Float ``(B, C, H, W)``, values 0..255; the input itself when nothing is enabled.
        """
        if not self.enabled:
            return images
        c = self.config
        x = images.float()
        batch, _, height, width = x.shape

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(batch, generator=generator, device=x.device)

        if self.geometric:
            angle = uniform(-c.rotation, c.rotation) * (math.pi / 180.0)
            zoom = uniform(c.scale_min, c.scale_max)
            flip = torch.where(uniform(0.0, 1.0) < c.hflip, -1.0, 1.0)
            shift_x = uniform(-c.translate, c.translate) * 2.0  # fraction of width -> normalised units
            shift_y = uniform(-c.translate, c.translate) * 2.0
            cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
            # A rotation in pixel space, written in normalised [-1, 1] coordinates of a
            # possibly non-square image: off-diagonal terms carry the aspect ratio.
            theta = torch.stack(
                [
                    torch.stack([cos * flip, -sin * (height / width), shift_x], dim=1),
                    torch.stack([sin * flip * (width / height), cos, shift_y], dim=1),
                ],
                dim=1,
            )  # (B, 2, 3)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if c.brightness > 0:
            x = x * uniform(1 - c.brightness, 1 + c.brightness).view(batch, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)
        if c.contrast > 0:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
            x = (x - mean) * uniform(1 - c.contrast, 1 + c.contrast).view(batch, 1, 1, 1) + mean  # (B,) -> (B, 1, 1, 1)
        return x.clamp_(0.0, 255.0)
