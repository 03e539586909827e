"""``pipenv run export``: parse the command line and call :func:`deploy.export.export`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import command_parser, options_from, run_main

EPILOG = """\
examples:
  pipenv run export                                   best checkpoint of the newest run -> model/<run>.onnx
  pipenv run export --run output/train/<run> --checkpoint last --name digits-v2
  pipenv run export --quantize int8                   also model/<name>-int8.onnx (static, calibrated)
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    from deploy.export import DEFAULT_INT8_AGREEMENT, DEFAULT_OPSET, DEFAULT_TOLERANCE

    parser = command_parser(
        "export", epilog=EPILOG,
        description="Export a training run's checkpoint to a self-describing ONNX model in model/, "
                    "gated by parity with PyTorch on the run's validation images.",
    )
    parser.add_argument("--run", default="last", help="run folder, its name, or 'last' (default: the newest run)")
    parser.add_argument("--checkpoint", default="best", help="best (default), last, or a path to a .pt file")
    parser.add_argument("--name", help="model name (default: the run's name)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"largest probability difference ONNX vs PyTorch (default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--parity-samples", type=int, default=512, help="validation images compared (default 512)")
    parser.add_argument("--quantize", choices=["int8"], help="also write an int8 model, <name>-int8.onnx")
    parser.add_argument("--quantize-mode", choices=["static", "dynamic"], default="static",
                        help="static (calibrated on training images; default) or dynamic")
    parser.add_argument("--calibration-samples", type=int, default=256,
                        help="training images for static calibration (default 256)")
    parser.add_argument("--int8-min-agreement", type=float, default=DEFAULT_INT8_AGREEMENT,
                        help=f"top-1 agreement with fp32 the int8 model needs (default {DEFAULT_INT8_AGREEMENT})")
    parser.add_argument("--network-config", type=Path,
                        help="shared network config to check against (default: shared_configs/networks/<name>.yaml)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model of the same name")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run the export command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    from common.paths import display_path
    from deploy.export import ExportOptions, export

    result = export(options_from(ExportOptions, args))
    print(f"exported {display_path(result.model)} (card: {display_path(result.model.with_suffix('.json'))})")
    print(f"  from {result.card.source.checkpoint} (epoch {result.card.source.epoch})")
    print(f"  {result.parity.summary()}")
    print(f"  accuracy on {result.parity.images} validation images: pytorch {result.parity.reference_accuracy:.4f}, "
          f"onnx {result.parity.candidate_accuracy:.4f}")
    if result.int8_model and result.int8_parity:
        print(f"exported {display_path(result.int8_model)}")
        print(f"  {result.int8_parity.summary()}")
        print(f"  accuracy: fp32 {result.int8_parity.reference_accuracy:.4f}, "
              f"int8 {result.int8_parity.candidate_accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
