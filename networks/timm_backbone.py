"""Every timm architecture as a network: ``arch: {name: timm, params: {model: resnet18}}``.

timm (PyTorch Image Models) is the field's model zoo: ResNet, MobileNetV3,
EfficientNet, ConvNeXt, ViT and about 1,400 more. :class:`TimmClassifier` builds any
of them with the config's class count and input channels (1 or 3) behind the same
:class:`networks.base.ImageClassifier` interface as the hand-written networks
(normalisation inside, ``forward_features`` / ``forward_head``), so training,
export, parity and evaluation need no change.

Weights are never downloaded: a network is built with random weights, and
pretrained weights come from a local file named by the network config's
``pretrained`` key (see docs/training.md, "Pretrained backbones").
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

import torch
from torch import nn

from common.contract import InputContract
from networks.base import ImageClassifier
from networks.config import NetworkConfig
from networks.registry import register_network

INTERPOLATIONS = {"bicubic": "bicubic", "bilinear": "bilinear", "nearest": "nearest", "lanczos": "lanczos",
                  "box": "box", "hamming": "hamming"}
"""timm's pretrained-config interpolation names -> the input contract's (Pillow's) names."""


@register_network("timm")
class TimmClassifier(ImageClassifier):
    """A timm model as an image classifier.

    The timm model is ``self.model``; its classifier head is replaced for
    ``config.num_classes`` and its stem for ``config.input.channels``. Models with a
    fixed input size (vision transformers) are built for the contract's size.

    Args:
        config: The network config.
        model: A timm model name (``timm.list_models()``), e.g. ``resnet18``,
            ``mobilenetv3_small_100``, ``efficientnet_b0``, ``convnext_atto``,
            ``vit_tiny_patch16_224``.
        drop_rate: Dropout before the classifier.
        drop_path_rate: Stochastic depth rate (models that support it).
        options: Further keyword arguments of ``timm.create_model``.
    """

    weights_prefix = "model."

    def __init__(self, config: NetworkConfig, model: str, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 options: dict[str, Any] | None = None):
        super().__init__(config)
        check_model_name(model)
        kwargs: dict[str, Any] = {"pretrained": False, "num_classes": config.num_classes,
                                  "in_chans": config.input.channels, "drop_rate": float(drop_rate), **(options or {})}
        if drop_path_rate:
            kwargs["drop_path_rate"] = float(drop_path_rate)
        self.model = _create(model, kwargs, (config.input.height, config.input.width))
        self.timm_name = model

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images ``(B, C, H, W)`` -> pooled features ``(B, F)`` (timm's pre-logits)."""
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``(B, F)`` -> logits ``(B, num_classes)``."""
        return self.model.get_classifier()(features)

    def classifier_module(self) -> nn.Module:
        """timm's classifier head."""
        return self.model.get_classifier()

    def adapt_pretrained(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Apply the model family's own checkpoint filter (e.g. resampling a ViT's position
        embedding to the contract's size), then name the keys as this network does."""
        module = importlib.import_module(type(self.model).__module__)
        filter_fn = getattr(module, "checkpoint_filter_fn", None)
        if filter_fn is not None:
            try:
                weights = filter_fn(dict(weights), self.model)
            except (KeyError, RuntimeError, ValueError, AttributeError):
                pass  # not in the layout the filter expects; the loader reports what does not match
        return super().adapt_pretrained(weights)

    @classmethod
    def suggested_contract(cls, params: dict[str, Any], color_mode: str = "RGB") -> InputContract:
        """The input contract of the model's pretrained weights (size, interpolation, mean, std).

        Args:
            params: The architecture parameters (``model`` names the timm model).
            color_mode: ``RGB`` (pretrained weights expect it) or ``L`` (channel means averaged).

        Raises:
            common.errors.UserError: For an unknown model name.
        """
        import timm

        check_model_name(params.get("model", ""))
        cfg = timm.models.get_pretrained_cfg(params["model"])
        _, height, width = cfg.input_size if cfg is not None else (3, 224, 224)
        mean = tuple(cfg.mean) if cfg is not None else (0.485, 0.456, 0.406)
        std = tuple(cfg.std) if cfg is not None else (0.229, 0.224, 0.225)
        if color_mode == "L":
            mean, std = (sum(mean) / 3,), (sum(std) / 3,)
        interpolation = INTERPOLATIONS.get(getattr(cfg, "interpolation", "bicubic"), "bicubic")
        return InputContract(color_mode, height, width, interpolation, mean, std)


def check_model_name(model: str) -> None:
    """Refuse a name timm does not know, suggesting close matches.

    Raises:
        common.errors.UserError: For an unknown name.
    """
    import timm

    from common.errors import UserError

    if not isinstance(model, str) or not timm.is_model(model):
        known = timm.list_models()
        close = difflib.get_close_matches(str(model), known, n=5, cutoff=0.6)
        hint = f"; close matches: {close}" if close else "; see timm.list_models()"
        raise UserError(f"arch.params.model: {model!r} is not a timm model{hint}")


def _create(model: str, kwargs: dict[str, Any], size: tuple[int, int]) -> nn.Module:
    import timm

    network = timm.create_model(model, **kwargs)
    fixed = getattr(getattr(network, "patch_embed", None), "img_size", None)
    if fixed is not None and tuple(fixed) != size:
        network = timm.create_model(model, img_size=size, **kwargs)  # a ViT built for the contract's size
    return network
