"""int8 models with onnxruntime's quantization tools.

``static``: weights and activations in int8 (QDQ format, per-channel weights),
activation ranges calibrated on training images. ``dynamic``: int8 weights,
activation ranges computed at run time. On small convolutional networks on CPU,
dynamic quantization runs convolutions as ``ConvInteger``, which is much slower than
fp32; static is the one worth using (see ``pipenv run bench export``).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.model_card import INPUT_NAME

MODES = ("static", "dynamic")


def quantize_int8(fp32: Path, out: Path, mode: str, calibration: np.ndarray, batch_size: int = 32) -> dict:
    """Write an int8 version of an fp32 ONNX model.

    Args:
        fp32: The fp32 model.
        out: The int8 model to write.
        mode: ``static`` or ``dynamic``.
        calibration: ``uint8`` images ``(N, C, H, W)`` for static calibration.
        batch_size: Calibration batch size.

    Returns:
        The settings used, for the model card.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if mode not in MODES:
        raise UserError(f"--quantize-mode {mode!r}: use one of {list(MODES)}")
    quiet = logging.getLogger()
    previous = quiet.level
    quiet.setLevel(logging.ERROR)  # onnxruntime's quantizer logs advice at WARNING for every run
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(fp32), str(prepared))
            if mode == "dynamic":
                quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8)
                return {"mode": "dynamic", "weights": "int8", "activations": "int8 ranges computed at run time",
                        "tool": "onnxruntime.quantization.quantize_dynamic"}

            class Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self.batches = iter(calibration[i:i + batch_size] for i in range(0, len(calibration), batch_size))

                def get_next(self) -> dict[str, np.ndarray] | None:
                    batch = next(self.batches, None)
                    return None if batch is None else {INPUT_NAME: batch}

            quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        quiet.setLevel(previous)
    return {"mode": "static", "format": "QDQ", "weights": "int8, per channel", "activations": "uint8",
            "calibration_images": int(len(calibration)), "tool": "onnxruntime.quantization.quantize_static"}
