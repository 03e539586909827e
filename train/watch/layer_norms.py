"""Weight and gradient norms per layer group, and their histograms.

A layer group is a module near the top of the network: the shallowest depth of the
parameters' module paths that splits them into at least three groups
(``features.0``, ``features.1``, ``classifier`` for the small CNN; ``model.layer1``
... ``model.fc`` for a timm ResNet). :func:`layer_groups` is pure; the norms are
computed on the device with one synchronisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

MIN_GROUPS = 3
"""Fewest groups :func:`layer_groups` aims for (deeper module paths are tried until there are this many)."""


def layer_groups(names: Sequence[str], max_depth: int = 6) -> list[str]:
    """The layer group of each parameter name (``features.0.0.weight`` -> ``features.0``).

    Args:
        names: Parameter names, as ``named_parameters`` gives them.
        max_depth: Deepest module path tried.
    """
    modules = [name.rsplit(".", 1)[0] if "." in name else "" for name in names]

    def at(depth: int) -> list[str]:
        return [".".join(module.split(".")[:depth]) or "(top)" for module in modules]

    depth = 1
    while depth < max_depth and len(set(at(depth))) < MIN_GROUPS and len(set(at(depth + 1))) > len(set(at(depth))):
        depth += 1
    return at(depth)


class LayerNorms:
    """Computes norms of a network's weights and gradients per layer group.

    Args:
        network: The (unwrapped) network.
    """

    def __init__(self, network: torch.nn.Module):
        named = list(network.named_parameters())
        self.parameters = [parameter for _, parameter in named]
        groups = layer_groups([name for name, _ in named])
        self.names = list(dict.fromkeys(groups))
        self.index = torch.tensor([self.names.index(group) for group in groups])

    def norms(self) -> dict[str, float]:
        """``norms/weight/<group>``, ``norms/grad/<group>`` (groups with gradients) and ``norms/grad_total``."""
        device = self.parameters[0].device
        index = self.index.to(device)
        weights = torch.stack(torch._foreach_norm([p.detach() for p in self.parameters])).float()  # (P,)
        with_grad = [i for i, p in enumerate(self.parameters) if p.grad is not None]
        squares = torch.zeros(2, len(self.names), device=device)  # (weight, grad) x groups
        squares[0].index_add_(0, index, weights.square())
        if with_grad:
            grads = torch.stack(torch._foreach_norm([self.parameters[i].grad for i in with_grad])).float()
            squares[1].index_add_(0, index[with_grad], grads.square())
        values = squares.sqrt().tolist()  # the one synchronisation
        out = {f"norms/weight/{name}": values[0][g] for g, name in enumerate(self.names)}
        if with_grad:
            has = {int(self.index[i]) for i in with_grad}
            out |= {f"norms/grad/{name}": values[1][g] for g, name in enumerate(self.names) if g in has}
            out["norms/grad_total"] = float(np.sqrt(sum(v * v for g, v in enumerate(values[1]) if g in has)))
        return out

    def histograms(self) -> dict[str, np.ndarray]:
        """``weights/<group>`` and ``grads/<group>``: every value of the group, flattened, on the CPU."""
        out: dict[str, np.ndarray] = {}
        for g, name in enumerate(self.names):
            members = [p for p, i in zip(self.parameters, self.index.tolist()) if i == g]
            out[f"weights/{name}"] = torch.cat([p.detach().float().flatten() for p in members]).cpu().numpy()
            grads = [p.grad.float().flatten() for p in members if p.grad is not None]
            if grads:
                out[f"grads/{name}"] = torch.cat(grads).cpu().numpy()
        return out
