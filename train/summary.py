"""A model summary for the log: per-layer output shapes, parameters and MACs."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from networks import ImageClassifier


def model_summary(network: ImageClassifier, device: torch.device) -> str:
    """Describe a network on one input image of its contract's shape.

    Runs one forward pass in eval mode (the training mode is restored afterwards;
    no random numbers are drawn), so it does not change the run's results.

    Returns:
        A table of leaf layers (name, type, output shape, parameters) and totals:
        parameters, trainable parameters and multiply-accumulates per image.
    """
    rows: list[tuple[str, str, str, int]] = []
    hooks = []
    for name, module in network.named_modules():
        if name and not list(module.children()):
            def record(mod: nn.Module, _inputs, output, name: str = name) -> None:
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else "-"
                rows.append((name, type(mod).__name__, str(shape), sum(p.numel() for p in mod.parameters())))

            hooks.append(module.register_forward_hook(record))
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            network(torch.zeros(1, *network.config.input.shape, dtype=torch.uint8, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        network.train(was_training)
    total = sum(p.numel() for p in network.parameters())
    trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
    macs = counter.get_total_flops() // 2
    width = max([len(r[0]) for r in rows] + [5])
    lines = [f"{'layer':<{width}}  {'type':<18} {'output':<20} {'params':>10}"]
    lines += [f"{n:<{width}}  {t:<18} {s:<20} {p:>10,}" for n, t, s, p in rows]
    lines.append(f"parameters {total:,} (trainable {trainable:,}); {macs:,} MACs per image "
                 f"of shape {tuple(network.config.input.shape)}")
    return "\n".join(lines)
