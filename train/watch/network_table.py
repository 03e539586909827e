"""A model summary for the log: per-layer output shapes, parameters and MACs."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from networks import ImageClassifier

MAX_ROWS = 40
"""Leaf layers listed in full; larger networks show their first and last half of this."""


def model_summary(network: ImageClassifier, device: torch.device) -> str:
    """Describe a network on one input image of its contract's shape.

    Runs one forward pass in eval mode (the training mode is restored afterwards;
    no random numbers are drawn), so it does not change the run's results.

    Returns:
        A table of leaf layers (name, type, output shape, parameters) and totals:
        parameters, trainable parameters and multiply-accumulates per image. Networks
        with more than ``MAX_ROWS`` leaf layers (most timm backbones) are shown by
        their first and last ``MAX_ROWS // 2`` layers.
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
    shown = rows if len(rows) <= MAX_ROWS else [*rows[:MAX_ROWS // 2], None, *rows[-MAX_ROWS // 2:]]
    lines += [f"... {len(rows) - MAX_ROWS} more layers" if row is None else
              f"{row[0]:<{width}}  {row[1]:<18} {row[2]:<20} {row[3]:>10,}" for row in shown]
    lines.append(f"parameters {total:,} (trainable {trainable:,}); {macs:,} MACs per image "
                 f"of shape {tuple(network.config.input.shape)}")
    return "\n".join(lines)
