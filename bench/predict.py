"""``pipenv run bench predict``: the ``predict`` command against a bare loop, side by side in one run.

1. Throughput: images/s of :func:`predict.run.predict` (gathering the inputs, the
   decision rule, the rows file, the summary, the report with its thumbnails: the
   whole command, with ``--rank uncertainty``) against a bare loop over the same files:
   the one batch decoder (:func:`common.images.decode_in_batches` with
   :func:`common.images.load_image`, the same batch size and threads) feeding an
   onnxruntime session with the same settings (:func:`common.onnx_model.session_options`;
   opened and closed in each round, as the command opens and closes its own), keeping
   nothing. The last two
   columns, for reference, are the same bare loop with onnxruntime's default session
   settings (what a script that sets nothing gets; its threads spin while they wait)
   and the command's ratio to it. Two models: ``digits_cnn`` (16x16
   gray, on ``DIGIT_FILES`` copies of the bundled digits' PNGs: decoding dominates) and
   timm's ResNet-18 at 224x224 RGB (on ``PHOTOS`` JPEG photos cut from scikit-learn's
   sample photos: inference dominates), both freshly initialised and exported with the
   deployment stage's code (speed does not depend on the weights; nothing is
   downloaded). Each round runs the contenders back to back (the bare loop, the command,
   the defaults, the bare loop again); target: the median of the rounds' command / bare
   ratios at least ``TARGET``. The bare loop's second run against its first shows how far
   the machine's noise alone moves a ratio.
2. Memory: the peak resident memory (``VmHWM``) of a process predicting ``10,000`` and
   ``MEMORY_FILES`` small files with ``digits_cnn``; images are held a batch at a time, so
   the peak must stay under ``MEMORY_LIMIT`` and grow by little more than the paths.

Needs torch to export the models (the workstation). The files are hard links of a
few images, so 100,000 of them take little disk.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from common.paths import PROJECT_ROOT
from predict.run import PredictOptions, predict

TARGET = 0.95
DIGIT_FILES = 20_000
PHOTOS = 1024
MEMORY_FILES = 100_000
MEMORY_LIMIT = 1 << 30
"""Bytes: the peak resident memory allowed while predicting ``MEMORY_FILES`` files."""


def main(rounds: int) -> int:
    """Measure and print; returns 0 when every target is met, 1 otherwise."""
    return run(rounds, DIGIT_FILES, PHOTOS, MEMORY_FILES)


def run(rounds: int, digit_files: int, photos: int, memory_files: int) -> int:
    """The benchmark at the given sizes (``main`` uses the module's; a quick check may use small ones)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["IMAGEPIPE_OUTPUT"] = str(folder / "output")  # the command writes here, never in the repository
        code = f"from bench.predict import prepare; prepare({str(folder)!r}, {digit_files}, {photos}, {memory_files})"
        subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True)
        digits, resnet = folder / "digits_cnn.onnx", folder / "resnet18.onnx"
        print(f"predict against a bare decode + onnxruntime loop, batch {PredictOptions.batch_size}, img/s the "
              f"median of {rounds} rounds "
              f"({max(2, rounds // 3)} for ResNet-18); "
              f"ratio: the median of the rounds' ratios (target >= {TARGET}), the middle half of them, and the "
              "bare loop run twice (the noise); then onnxruntime's default settings and the command's ratio to them")
        print(f"  {'model':<18} {'images':>7} {'bare':>6} {'predict':>8} {'ratio':>6} {'middle':>10} "
              f"{'bare/bare':>10} {'defaults':>9} {'ratio':>6}")
        ok = _throughput("digits_cnn 16x16", digits, folder / "digits", rounds)
        ok &= _throughput("resnet18 224x224", resnet, folder / "photos", max(2, rounds // 3))
        ok &= _memory(digits, folder, memory_files)
    return 0 if ok else 1


def prepare(folder: str, digit_files: int, photos: int, memory_files: int) -> None:
    """Export both models and write every input the benchmark reads into ``folder``.

    Run in a process of its own: the measuring process then imports neither torch nor
    scikit-learn, as a user's ``predict`` process does not. (With torch's 400,000 objects
    in the process, each of Python's full garbage collections took 200 ms, landing in
    one contender's round or the other's: several percent of noise.)
    """
    root = Path(folder)
    _digits_model(root)
    _resnet_model(root)
    _digit_files(root / "digits", digit_files)
    _photo_files(root / "photos", photos)
    for files in sorted({min(10_000, memory_files), memory_files}):
        _digit_files(root / f"memory-{files}", files)


def _throughput(label: str, model_path: Path, images: Path, rounds: int) -> bool:
    """One model's row: each round runs the bare loop, the command, the bare loop with onnxruntime's defaults
    and the bare loop again, back to back; the ratio is the median of the rounds' command / bare ratios (a
    round's contenders share the machine's mood), and the bare loop against itself shows the noise."""
    paths = sorted(str(p) for p in images.rglob("*.*"))
    options = PredictOptions(inputs=(str(images),), model=model_path, rank="uncertainty", progress=False,
                             overwrite=True, name="bench")
    bare, defaults = _bare_loop(model_path, paths, options), _bare_loop(model_path, paths, options, defaults=True)

    def command() -> float:
        started = time.perf_counter()
        result = predict(options)
        assert result.summary.predicted == len(paths)
        return len(paths) / (time.perf_counter() - started)

    contenders = {"bare": bare, "command": command, "defaults": defaults, "again": bare}
    for function in contenders.values():
        function()  # warm-up: file cache, sessions
    runs: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, function in contenders.items():
            gc.collect()  # every run starts with the same garbage: none
            runs[name].append(function())
    ratios = {name: sorted(a / b for a, b in zip(runs[name], runs["bare"])) for name in ("command", "again")}
    ratio = statistics.median(ratios["command"])
    quarter = len(ratios["command"]) // 4
    spread = f"{ratios['command'][quarter]:.2f}-{ratios['command'][-1 - quarter]:.2f}"
    speed = {name: statistics.median(values) for name, values in runs.items()}
    print(f"  {label:<18} {len(paths):>7,} {speed['bare']:>6.0f} {speed['command']:>8.0f} {ratio:>6.3f} "
          f"{spread:>10} {statistics.median(ratios['again']):>10.3f} {speed['defaults']:>9.0f} "
          f"{statistics.median(a / b for a, b in zip(runs['command'], runs['defaults'])):>6.3f}")
    return ratio >= TARGET


def _bare_loop(model_path: Path, paths: list[str], options: PredictOptions, defaults: bool = False):
    """A function running the bare loop once over ``paths`` (opening and closing its session, as any script
    must); images/s.

    Batch size, decoding threads and intra-op threads are the command's (``options``); the
    session has the settings every stage uses (:func:`common.onnx_model.session_options`),
    or with ``defaults`` onnxruntime's own (what a script that sets nothing gets).
    """
    import numpy as np
    import onnxruntime

    from common.images import decode_in_batches, load_image
    from common.model_card import INPUT_NAME, OUTPUT_PROBABILITIES
    from common.onnx_model import open_model, session_options

    decode = partial(load_image, contract=open_model(model_path).contract)

    def bare() -> float:
        started = time.perf_counter()
        settings = onnxruntime.SessionOptions() if defaults else session_options(options.threads)
        session = onnxruntime.InferenceSession(str(model_path), settings, providers=list(options.providers))
        for pairs in decode_in_batches(paths, Path, decode, options.batch_size, options.workers):
            session.run([OUTPUT_PROBABILITIES], {INPUT_NAME: np.stack([image for _, image in pairs])})  # N x (C, H, W)
        del session  # closed inside the timing, as the command closes its own (ResNet-18's arena: 0.1 s)
        return len(paths) / (time.perf_counter() - started)

    return bare


def _memory(model_path: Path, folder: Path, count: int) -> bool:
    peaks = {}
    for files in sorted({min(10_000, count), count}):
        images = folder / f"memory-{files}"
        code = ("from bench.predict import peak_memory_predicting; "
                f"print(peak_memory_predicting({str(images)!r}, {str(model_path)!r}))")
        result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                check=True, env={**os.environ, "IMAGEPIPE_OUTPUT": str(folder / f"out-{files}")})
        peaks[files] = int(result.stdout.split()[-1])
    shown = ", ".join(f"{files:,} files {peak / 2**20:.0f} MiB" for files, peak in peaks.items())
    print(f"peak resident memory of a process predicting with digits_cnn (VmHWM, the whole process): {shown} "
          f"(limit {MEMORY_LIMIT / 2**20:.0f} MiB at {count:,})")
    return peaks[count] < MEMORY_LIMIT


def peak_memory_predicting(images: str, model: str) -> int:
    """Predict every file below ``images`` in this process; its peak resident bytes (``VmHWM``).

    ``getrusage``'s ``ru_maxrss`` would keep the high-water mark of the process that started this one.
    """
    predict(PredictOptions(inputs=(images,), model=Path(model), rank="uncertainty", progress=False, name="memory"))
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024


def _digit_files(folder: Path, count: int) -> Path:
    """``count`` files: hard links (copies where links fail) of the bundled digits' PNGs, 1,000 per folder."""
    from common.digits import ensure_digits

    sources = sorted((ensure_digits() / "raw").rglob("*.png"))
    for index in range(count):
        target = folder / f"{index // 1000:03d}" / f"{index:06d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(sources[index % len(sources)], target)
        except OSError:
            target.write_bytes(sources[index % len(sources)].read_bytes())
    return folder


def _photo_files(folder: Path, count: int) -> Path:
    """``count`` 224x224 JPEG photos (crops of scikit-learn's sample photos)."""
    from PIL import Image

    from bench.export import photo_crops

    folder.mkdir(parents=True)
    for index, pixels in enumerate(photo_crops(count, 224)):
        image = Image.fromarray(pixels.transpose(1, 2, 0))  # (C, H, W) -> (H, W, C)
        image.save(folder / f"{index:05d}.jpg", quality=90)
    return folder


def _digits_model(folder: Path) -> Path:
    from networks import load_network_config

    return _export(load_network_config("digits_cnn"), folder / "digits_cnn.onnx")


def _resnet_model(folder: Path) -> Path:
    from common.contract import InputContract
    from networks.config import ArchConfig, NetworkConfig

    contract = InputContract("RGB", 224, 224, "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    config = NetworkConfig(name="resnet18", arch=ArchConfig("timm", {"model": "resnet18"}), num_classes=8,
                           input=contract)
    return _export(config, folder / "resnet18.onnx")


def _export(config, path: Path) -> Path:
    """A freshly initialised network exported as deployment does, with its card and sidecar."""
    import torch

    from common.integrity import record_sha256
    from common.model_card import ModelCard
    from deploy.card import card_network, write_card
    from deploy.graph import ExportedClassifier, to_onnx
    from networks import build_network

    torch.manual_seed(0)
    to_onnx(ExportedClassifier(build_network(config).eval()).eval(), path)
    card = ModelCard(name=path.stem, created="", class_names=tuple(f"class{i}" for i in range(config.num_classes)),
                     contract=config.input, network=card_network(config))
    write_card(path, card, path.with_suffix(".json"))
    record_sha256(path)
    return path
