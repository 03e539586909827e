"""The input contract: what a network expects to be fed, stated once.

The contract lives in the shared network config (``shared_configs/networks/``), is
recorded in every checkpoint and travels inside every exported ONNX model, so the
stages never restate image size, colour mode or normalisation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from common.errors import UserError
from common.limits import MAX_PIXELS

COLOR_MODES: dict[str, int] = {"L": 1, "RGB": 3}
"""Supported colour modes (Pillow's names) and their number of channels."""

INTERPOLATIONS: tuple[str, ...] = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
"""Supported resize filters (Pillow's, by lower-case name)."""


class ContractError(UserError):
    """An input contract whose values are inconsistent.

    Attributes:
        problems: One ``"<key>: <what is wrong>"`` string per problem.
    """

    def __init__(self, problems: list[str], prefix: str = ""):
        self.problems = [f"{prefix}{p}" for p in problems]
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class InputContract:
    """How a raw image becomes a network input.

    A decoded image is converted to ``color_mode``, resized to ``height`` x ``width``
    with ``interpolation`` (Pillow) and handed over as ``uint8`` in ``(C, H, W)``
    layout with values 0..255, channels in ``color_mode`` order (R, G, B for RGB).
    Normalisation, ``(x / 255 - mean) / std`` per channel, happens inside the
    network, so ``mean`` and ``std`` are on the 0..1 scale.

    Attributes:
        color_mode: ``"L"`` (grayscale, 1 channel) or ``"RGB"`` (3 channels).
        height: Network input height in pixels.
        width: Network input width in pixels.
        interpolation: Resize filter, one of ``INTERPOLATIONS``.
        mean: Per-channel mean on the 0..1 scale, one value per channel.
        std: Per-channel standard deviation on the 0..1 scale, all positive.
    """

    color_mode: str
    height: int
    width: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        # Values may arrive as lists (JSON, YAML); keep immutable float tuples.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        problems = self.problems()
        if problems:
            raise ContractError(problems)

    def problems(self) -> list[str]:
        """Every way this contract is inconsistent, as ``key: what is wrong``."""
        out = []
        if self.color_mode not in COLOR_MODES:
            out.append(f"color_mode: {self.color_mode!r} is not one of {sorted(COLOR_MODES)}")
        if self.interpolation not in INTERPOLATIONS:
            out.append(f"interpolation: {self.interpolation!r} is not one of {list(INTERPOLATIONS)}")
        sizes = []
        for key in ("height", "width"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                out.append(f"{key}: must be a positive integer, got {value!r}")
            else:
                sizes.append(value)
        if len(sizes) == 2 and sizes[0] * sizes[1] > MAX_PIXELS:
            out.append(f"height x width: {sizes[0]} x {sizes[1]} = {sizes[0] * sizes[1]:,} pixels, more than the "
                       f"{MAX_PIXELS:,} the decoder reads in one image (common.limits.MAX_PIXELS)")
        channels = COLOR_MODES.get(self.color_mode)
        for key in ("mean", "std"):
            values = getattr(self, key)
            if channels is not None and len(values) != channels:
                out.append(
                    f"{key}: color_mode {self.color_mode} has {channels} channel(s), "
                    f"so {key} needs {channels} value(s), got {len(values)}"
                )
        if any(v <= 0 for v in self.std):
            out.append(f"std: every value must be positive, got {list(self.std)}")
        return out

    @property
    def channels(self) -> int:
        """Number of input channels (1 for ``L``, 3 for ``RGB``)."""
        return COLOR_MODES[self.color_mode]

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's shape as the network receives it, ``(C, H, W)``."""
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        """The contract as plain JSON-ready values."""
        out = asdict(self)
        out["mean"] = list(self.mean)
        out["std"] = list(self.std)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "input contract") -> InputContract:
        """Build a contract from a mapping, refusing unknown or missing keys.

        Args:
            data: The mapping, e.g. from an ONNX model's metadata.
            source: What the mapping came from, named in error messages.

        Raises:
            UserError: When a key is unknown or missing, or a value is invalid.
        """
        if not isinstance(data, dict):
            raise UserError(f"{source}: expected a mapping of contract fields, got {type(data).__name__}")
        known = {"color_mode", "height", "width", "interpolation", "mean", "std"}
        unknown = sorted(set(data) - known)
        missing = sorted(known - set(data))
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown key(s) {unknown}")
            if missing:
                parts.append(f"missing key(s) {missing}")
            raise UserError(f"{source}: {', '.join(parts)}; expected exactly {sorted(known)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{source}: {exc}") from None
        except UserError as exc:
            raise UserError(f"{source}: {exc}") from None
