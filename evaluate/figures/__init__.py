"""The evaluation's figures: one module per figure family, registered by name.

Each figure is a :class:`evaluate.figures.base.Figure` subclass that computes,
serialises and presents itself (see :mod:`evaluate.figures.base`); the scoring, the
reports and ``evaluate compare`` only lay out what the registered figures give them::

    @register_figure("balanced_accuracy")
    class BalancedAccuracy(ScalarFigure):
        ...

Adding a figure is one module in this package (and its test): its name becomes its key
in ``metrics.json``, and it shows in ``result.txt``, ``report.html`` and ``compare``.
Modules here are discovered on the first lookup (:class:`common.registry.Registry`), like
the networks and the data-set readers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from common.registry import Registry
from evaluate.figures.base import Figure

FIGURES: Registry[type[Figure]] = Registry("figure", "evaluate.figures", Figure)
"""Every figure, by name."""

F = TypeVar("F", bound=type[Figure])


def register_figure(name: str) -> Callable[[F], F]:
    """Class decorator that registers a :class:`Figure` under ``name`` (its key in ``metrics.json``).

    Raises:
        TypeError: When the decorated class is not a :class:`Figure`.
        ValueError: When ``name`` is already registered by another class.
    """

    def decorator(cls: F) -> F:
        FIGURES.register(name)(cls)
        cls.name = name
        return cls

    return decorator


def build_figures(names: Sequence[str] | None = None) -> list[Figure]:
    """The figures to compute, in output order (``order``, then name).

    Args:
        names: Registered names (default: every registered figure).

    Raises:
        UserError: For an unknown name, listing the registered ones.
    """
    chosen = FIGURES.names() if names is None else list(names)
    return sorted((FIGURES.get(name, "figures: ")() for name in chosen), key=lambda f: (f.order, f.name))


__all__ = ["FIGURES", "Figure", "build_figures", "register_figure"]
