"""matplotlib for files only: pyplot on the Agg backend, imported on first use, text drawn as written."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the file-only Agg backend (no display needed).

    Every figure of the project draws class names, file names and folder names that
    come from data sets and result files. matplotlib would read a text between two
    ``$`` as mathtext (and fail on ``$x^{$``); here ``text.parse_math`` is off, so every
    text is drawn exactly as written, ``$`` included: the one place where names are
    made safe to draw.
    """
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt
