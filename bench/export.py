"""Inference speed of the exported model: onnxruntime (fp32, int8 static, int8 dynamic)
against torch eager, on the same network and the same images, in one run.

Latency: batch 1, median over many calls. Throughput: batch 256, median images/s
over several rounds. Contenders alternate within each round. Ratios are against
torch eager (above 1: faster than torch).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from common.digits import ensure_digits
from common.lists import open_dataset
from common.images import load_samples
from common.lists import read_split
from deploy.graph import ExportedClassifier, to_onnx
from deploy.parity import onnx_predictor
from deploy.quantize import quantize_int8
from networks import build_network, load_network_config

NETWORK = "digits_cnn"


def main(rounds: int) -> int:
    """Measure and print the table; returns 0."""
    ensure_digits()
    config = load_network_config(NETWORK)
    torch.manual_seed(0)
    module = ExportedClassifier(build_network(config).eval()).eval()
    dataset = open_dataset("digits")
    images, _, _ = load_samples(dataset, read_split(dataset, "train")[:512], config.input)
    batch = images[:256]
    single = images[:1]
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        to_onnx(module, fp32)
        quantize_int8(fp32, Path(tmp) / "static.onnx", "static", images[:256])
        quantize_int8(fp32, Path(tmp) / "dynamic.onnx", "dynamic", images[:256])

        def torch_predict(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(x))[0].numpy()

        contenders: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "torch eager fp32": torch_predict,
            "onnxruntime fp32": onnx_predictor(fp32),
            "onnxruntime int8 static": onnx_predictor(Path(tmp) / "static.onnx"),
            "onnxruntime int8 dynamic": onnx_predictor(Path(tmp) / "dynamic.onnx"),
        }
        sizes = {name: (Path(tmp) / f"{key}.onnx").stat().st_size for name, key in
                 [("onnxruntime fp32", "fp32"), ("onnxruntime int8 static", "static"),
                  ("onnxruntime int8 dynamic", "dynamic")]}
        latency: dict[str, list[float]] = {name: [] for name in contenders}
        throughput: dict[str, list[float]] = {name: [] for name in contenders}
        for predict in contenders.values():  # warm-up
            predict(batch), predict(single)
        for _ in range(rounds):
            for name, predict in contenders.items():
                calls = []
                for _ in range(50):
                    started = time.perf_counter()
                    predict(single)
                    calls.append(time.perf_counter() - started)
                latency[name].append(statistics.median(calls))
                started = time.perf_counter()
                predict(batch)
                throughput[name].append(len(batch) / (time.perf_counter() - started))
    base_latency = statistics.median(latency["torch eager fp32"])
    base_throughput = statistics.median(throughput["torch eager fp32"])
    print(f"{NETWORK} inference, {torch.get_num_threads()} threads, {rounds} rounds, contenders alternating")
    print(f"{'':26} {'batch 1 ms':>10} {'speed-up':>9} {'batch 256 img/s':>16} {'speed-up':>9} {'model KiB':>10}")
    for name in contenders:
        ms = statistics.median(latency[name]) * 1000
        ips = statistics.median(throughput[name])
        size = f"{sizes[name] / 1024:10.0f}" if name in sizes else f"{'-':>10}"
        print(f"{name:26} {ms:10.3f} {base_latency * 1000 / ms:9.2f} {ips:16.0f} {ips / base_throughput:9.2f} {size}")
    return 0
