"""The README's "Bring your own data set" commands, run as written on a generated photo folder.

The commands are read from the README (so the README cannot drift from what works),
mapped through the Pipfile's scripts, and run in temporary folders. Only what keeps
the test small and out of the repository changes: the photo folder's path, the
network config written as a temporary file instead of into shared_configs/, a
smaller input size and network, fewer epochs, the CPU and no progress bars (options
appended after the README's, which is where later options win).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest

from common.paths import PROJECT_ROOT
from tests.commands import command_line
from tests.photo_folder import write_photo_folder

SECTION = "### Bring your own data set"


def readme_commands() -> list[list[str]]:
    """The first fenced block after the section heading, one command per line, comments dropped."""
    text = (PROJECT_ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text[text.index(SECTION):], re.S).group(1)
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def as_module(command: list[str]) -> list[str]:
    """``pipenv run <script> args`` -> ``python -m <module> [<command>] args``, by the Pipfile's [scripts]."""
    assert command[:2] == ["pipenv", "run"], command
    return command_line(command[2], *command[3:])


@pytest.mark.slow
def test_from_a_folder_of_photos_to_an_evaluation_report(tmp_path):
    photos = write_photo_folder(tmp_path / "photos")
    folders = {name: tmp_path / name for name in ("data", "model", "output")}
    env = {**os.environ, **{f"IMAGEPIPE_{name.upper()}": str(path) for name, path in folders.items()}}
    network = tmp_path / "flowers_cnn.yaml"
    extra = {"prepare-data": [], "inspect-data": ["--size", "32", "--params", "channels=[16,32]", "--per-class", "2"],
             "train": ["epochs=12", "--device", "cpu", "--no-progress"],
             "export": ["--network-config", str(network)],
             "evaluate": ["--no-progress"]}
    commands = readme_commands()
    assert [c[2] for c in commands] == ["prepare-data", "inspect-data", "train", "export", "evaluate"]
    outputs = {}
    for command in commands:
        script = command[2]
        words = [w.replace("~/photos", str(photos)).replace("flowers_cnn", str(network))
                 .replace("data/flowers/", f"{folders['data']}/flowers/") for w in command]
        result = subprocess.run([*as_module(words), *extra[script]], cwd=PROJECT_ROOT, env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"{shlex.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        outputs[script] = result.stdout
    assert "120 images of 3 classes" in outputs["prepare-data"] and "2 file(s) left out" in outputs["prepare-data"]
    assert "0 problem(s)" in outputs["inspect-data"] and f"wrote {network}" in outputs["inspect-data"]
    assert "data check (headers of 84 of 84 train images): no shortcut" in outputs["train"]
    assert "time estimate:" in outputs["train"]
    accuracy = float(re.search(r"24 samples: accuracy (\d\.\d+)", outputs["evaluate"]).group(1))
    assert accuracy >= 0.6, outputs["evaluate"]  # chance is 0.33
    (report,) = (folders["output"] / "eval").glob("*/report.html")
    assert report.is_file() and str(report.relative_to(folders["output"])) in outputs["evaluate"]


@pytest.mark.slow
def test_a_csv_manifest_with_class_names_imports_and_trains(tmp_path, monkeypatch):
    from common.cli import run_main
    from tests.commands import command_main
    from train.config import load_train_config
    from train.run import RunOptions, train

    photos = write_photo_folder(tmp_path / "photos", per_class=20)
    files = sorted(p for p in photos.rglob("*") if p.suffix in (".jpg", ".png") and p.name != "broken.jpg")
    manifest = tmp_path / "labels.csv"
    manifest.write_text("file,label\n" + "".join(f"{p.relative_to(tmp_path)},{p.relative_to(photos).parts[0]}\n"
                                                 for p in files))
    monkeypatch.setenv("IMAGEPIPE_DATA", str(tmp_path / "data"))
    assert run_main(command_main("prepare-data"), ["--from-csv", str(manifest), "--name", "shop"]) == 0
    network = tmp_path / "shop_cnn.yaml"
    network.write_text("version: 1\narch: {name: small_cnn, params: {channels: [16, 32], dropout: 0.1}}\n"
                       "num_classes: 3\ninput: {color_mode: RGB, height: 24, width: 24, interpolation: bilinear,\n"
                       "        mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}\n")
    config = load_train_config(overrides=[f"network={network}", "data.dataset=shop", "epochs=10", "batch_size=16"])
    result = train(config, RunOptions(device="cpu", progress=False))
    assert result.status == "finished" and result.metrics["val/accuracy"] >= 0.6  # chance is 0.33
