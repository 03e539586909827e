"""Inference speed of exported models: onnxruntime (fp32, int8 static, int8 dynamic) against
torch eager, on the same network and the same images, in one run.

Two tables:

1. ``digits_cnn`` on the bundled digits: batch 1 latency and batch 256 throughput.
2. One row group per standard timm backbone (resnet18, mobilenetv3_small_100,
   efficientnet_b0, convnext_atto, vit_tiny_patch16_224) at 224x224 RGB: batch 1
   latency and batch 32 throughput for torch eager, onnxruntime fp32 and static
   int8, and the int8 model's top-1 agreement with fp32 on 64 photo crops cut from
   scikit-learn's bundled sample photos. No pretrained weights can be downloaded
   here, so each backbone keeps its random weights and gets a fitted head: its
   pooled features of 96 other crops are clustered into 8 pseudo-classes (k-means)
   and a logistic regression on them becomes the classifier. The agreement then
   measures what quantization changes in a classifier that separates real images,
   not accuracy; speed does not depend on the weights.

Latency: median over many calls. Throughput: median images/s over the rounds.
Contenders alternate within each round. Ratios are against torch eager (above 1:
faster than torch). ``--rounds`` sets the rounds of the digits table; the backbones
use a third of them (at least 2).
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from common.contract import InputContract
from common.digits import ensure_digits, open_dataset_or_digits
from common.images import load_samples
from common.lists import read_split
from deploy.graph import ExportedClassifier, to_onnx
from deploy.parity import onnx_predictor
from deploy.quantize import quantize_int8
from networks import build_network, load_network_config
from networks.config import ArchConfig, NetworkConfig

NETWORK = "digits_cnn"
BACKBONES = ("resnet18", "mobilenetv3_small_100", "efficientnet_b0", "convnext_atto", "vit_tiny_patch16_224")
PSEUDO_CLASSES = 8
"""Classes of the fitted head of each backbone (k-means clusters of its features)."""
Predict = Callable[[np.ndarray], np.ndarray]


def main(rounds: int) -> int:
    """Measure and print both tables; returns 0."""
    ensure_digits()
    config = load_network_config(NETWORK)
    dataset = open_dataset_or_digits("digits")
    images, _, _ = load_samples(dataset, read_split(dataset, "train")[:512], config.input)
    print(f"{NETWORK} inference, {torch.get_num_threads()} threads, {rounds} rounds, contenders alternating")
    _table(_measure(config, images[:256], images[:256], ("static", "dynamic"), 256, rounds), 256)
    torch.set_flush_denormal(True)  # random backbones produce tiny activations that stall CPUs as denormals
    photos = photo_crops(160, 224)
    for model in BACKBONES:
        backbone = _backbone_config(model)
        print(f"\n{model} at 224x224 RGB (random backbone, fitted head), {max(2, rounds // 3)} rounds")
        results = _measure(backbone, photos[:32], photos[96:], ("static",), 32, max(2, rounds // 3), photos[:96])
        _table(results, 32)
    return 0


def photo_crops(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Random square crops of scikit-learn's two sample photos, resized, flipped at random.

    Returns:
        ``uint8`` ``(count, 3, size, size)``.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = sample_photos()
    out = np.empty((count, 3, size, size), dtype=np.uint8)
    for i in range(count):
        photo = photos[i % len(photos)]
        side = int(rng.integers(120, 400))
        top, left = int(rng.integers(0, photo.shape[0] - side)), int(rng.integers(0, photo.shape[1] - side))
        crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(crop)[:, ::-1] if rng.random() < 0.5 else np.asarray(crop)
        out[i] = pixels.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
    return out


@functools.lru_cache(maxsize=1)
def sample_photos() -> tuple[np.ndarray, ...]:
    """scikit-learn's two bundled sample photos, ``uint8 (427, 640, 3)`` each (read once)."""
    from sklearn.datasets import load_sample_images

    return tuple(load_sample_images().images)


def _backbone_config(model: str) -> NetworkConfig:
    contract = InputContract("RGB", 224, 224, "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return NetworkConfig(name=model, arch=ArchConfig("timm", {"model": model}), num_classes=PSEUDO_CLASSES,
                         input=contract)


def _fit_head(network: torch.nn.Module, images: np.ndarray) -> None:
    """Make the classifier a logistic regression on k-means pseudo-classes of the network's features."""
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression

    with torch.no_grad():
        features = network.forward_features(network.normalize(torch.from_numpy(images))).double().numpy()
    scale = features.std(axis=0).mean() or 1.0
    labels = KMeans(PSEUDO_CLASSES, n_init=4, random_state=0).fit_predict(features / scale)
    fitted = LogisticRegression(max_iter=2000, C=10.0).fit(features / scale, labels)
    head = network.classifier_module()
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(fitted.coef_ / scale))
        head.bias.copy_(torch.from_numpy(fitted.intercept_))


def _measure(config: NetworkConfig, calibration: np.ndarray, images: np.ndarray, modes: tuple[str, ...],
             batch_size: int, rounds: int, probe: np.ndarray | None = None) -> dict:
    torch.manual_seed(0)
    network = build_network(config).eval()
    if probe is not None:
        _fit_head(network, probe)
    module = ExportedClassifier(network).eval()

    def torch_predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x))[0].numpy()

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        to_onnx(module, fp32)
        contenders: dict[str, Predict] = {"torch eager fp32": torch_predict, "onnxruntime fp32": onnx_predictor(fp32)}
        sizes = {"onnxruntime fp32": fp32.stat().st_size}
        for mode in modes:
            path = Path(tmp) / f"{mode}.onnx"
            quantize_int8(fp32, path, mode, calibration)
            contenders[f"onnxruntime int8 {mode}"] = onnx_predictor(path)
            sizes[f"onnxruntime int8 {mode}"] = path.stat().st_size
        latency, throughput = _time(contenders, images[:batch_size], rounds)
    reference = contenders["onnxruntime fp32"](images).argmax(axis=1)
    agreement = {name: float((predict(images).argmax(axis=1) == reference).mean())
                 for name, predict in contenders.items() if "int8" in name}
    return {"latency": latency, "throughput": throughput, "sizes": sizes, "agreement": agreement,
            "images": len(images)}


def _time(contenders: dict[str, Predict], batch: np.ndarray, rounds: int
          ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    single = batch[:1]
    latency: dict[str, list[float]] = {name: [] for name in contenders}
    throughput: dict[str, list[float]] = {name: [] for name in contenders}
    for predict in contenders.values():  # warm-up
        predict(batch), predict(single)
    calls_per_round = 50 if batch.shape[-1] < 64 else 10
    for _ in range(rounds):
        for name, predict in contenders.items():
            calls = []
            for _ in range(calls_per_round):
                started = time.perf_counter()
                predict(single)
                calls.append(time.perf_counter() - started)
            latency[name].append(statistics.median(calls))
            started = time.perf_counter()
            predict(batch)
            throughput[name].append(len(batch) / (time.perf_counter() - started))
    return latency, throughput


def _table(results: dict, batch_size: int) -> None:
    base_latency = statistics.median(results["latency"]["torch eager fp32"])
    base_throughput = statistics.median(results["throughput"]["torch eager fp32"])
    print(f"{'':26} {'batch 1 ms':>10} {'speed-up':>9} {f'batch {batch_size} img/s':>16} {'speed-up':>9} "
          f"{'model KiB':>10} {'top-1 vs fp32':>14}")
    for name in results["latency"]:
        ms = statistics.median(results["latency"][name]) * 1000
        ips = statistics.median(results["throughput"][name])
        size = f"{results['sizes'][name] / 1024:10.0f}" if name in results["sizes"] else f"{'-':>10}"
        agree = results["agreement"].get(name)
        agreement = f"{agree:13.1%}" if agree is not None else f"{'-':>13}"
        print(f"{name:26} {ms:10.3f} {base_latency * 1000 / ms:9.2f} {ips:16.1f} {ips / base_throughput:9.2f} "
              f"{size} {agreement}")
    if results["agreement"]:
        print(f"  (int8 agreement on {results['images']} images)")
