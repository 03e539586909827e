"""The one writer of shared network configs: validated before it appears, never overwriting by accident."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from common.contract import InputContract
from common.errors import UserError
from common.paths import PROJECT_ROOT
from networks import build_network
from networks.config import load_network_config
from networks.writer import write_network_config
from tests.commands import command_line, command_main

CONTRACT = InputContract("RGB", 24, 20, "bicubic", (0.41, 0.42, 0.39), (0.32, 0.33, 0.28))


def test_round_trip_and_the_file_reads_like_a_hand_written_one(tmp_path):
    path = tmp_path / "flowers_cnn.yaml"
    written = write_network_config(path, "small_cnn", {"channels": [8, 16], "dropout": 0.1}, 3, CONTRACT,
                                   header="Written by a test.\nSecond line.")
    loaded = load_network_config(path)
    assert written == loaded and loaded.name == "flowers_cnn" and loaded.num_classes == 3
    assert loaded.input == CONTRACT and loaded.arch.params == {"channels": [8, 16], "dropout": 0.1}
    text = path.read_text()
    assert text.startswith("# Written by a test.\n# Second line.\nversion: 1\n")
    assert "mean: [0.41, 0.42, 0.39]" in text
    assert build_network(loaded).config.input.shape == (3, 24, 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flowers_cnn.yaml"]  # no staging folder left


def test_an_existing_config_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("# mine\n")
    with pytest.raises(UserError, match="mine.yaml already exists; pass --overwrite"):
        write_network_config(path, "small_cnn", {}, 3, CONTRACT)
    assert path.read_text() == "# mine\n"
    write_network_config(path, "resnet", {"widths": [8], "blocks": [1]}, 5, CONTRACT, overwrite=True)
    assert load_network_config(path).arch.name == "resnet"


@pytest.mark.parametrize(("arch", "params", "num_classes", "message"), [
    ("small_cn", {}, 3, "unknown network 'small_cn'; registered: "),
    ("small_cnn", {"chanels": [8]}, 3, r"unknown parameter\(s\) \['chanels'\]"),
    ("small_cnn", {}, 0, "num_classes: must be at least 1"),
])
def test_a_config_that_would_not_build_is_never_written(tmp_path, arch, params, num_classes, message):
    with pytest.raises(UserError, match=message):
        write_network_config(tmp_path / "bad.yaml", arch, params, num_classes, CONTRACT)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_inspect_data_writes_the_measured_contract(digits_root, tmp_path):
    env = {**os.environ, "IMAGEPIPE_OUTPUT": str(tmp_path / "out")}
    path = tmp_path / "digits_small.yaml"

    def inspect(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*command_line("inspect-data"), "--dataset", str(digits_root),
                               "--per-class", "1", "--size", "16", *args], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    done = inspect("--write-network", str(path), "--arch", "small_cnn", "--params", "channels=[8,16]")
    assert done.returncode == 0, done.stderr
    config = load_network_config(path)
    shipped = load_network_config("digits_cnn")  # measured by hand on the same images at the same size
    assert config.num_classes == 10 and config.input.shape == shipped.input.shape
    assert config.input.mean == pytest.approx(shipped.input.mean, abs=0.002)
    assert config.input.std == pytest.approx(shipped.input.std, abs=0.002)
    assert f"network={path}" in done.stdout
    shutil.rmtree(tmp_path / "out")
    again = inspect("--write-network", str(path), "--arch", "small_cnn")
    assert again.returncode == 2 and "already exists; pass --overwrite" in again.stderr
    assert not (tmp_path / "out").exists()  # refused before inspecting
    assert inspect("--write-network", str(path)).returncode == 2  # --arch is required


def test_a_timm_network_takes_the_contract_of_its_pretrained_weights(write_dataset, tmp_path, monkeypatch):
    import numpy as np

    from common.cli import run_main

    main = command_main("inspect-data")

    rng = np.random.default_rng(0)
    images = {f"raw/{c}/{i}.png": rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for c in "ab" for i in range(6)}
    lists = {"train": "".join(f"raw/{c}/{i}.png {'ab'.index(c)}\n" for c in "ab" for i in range(6))}
    root = write_dataset(classes=["a", "b"], images=images, lists=lists)
    monkeypatch.setenv("IMAGEPIPE_OUTPUT", str(tmp_path / "out"))
    path = tmp_path / "photos_r18.yaml"
    args = ["--dataset", str(root), "--per-class", "1", "--write-network", str(path), "--arch", "timm",
            "--params", "model=resnet18", "--pretrained", "resnet18.safetensors"]
    assert run_main(main, args) == 0
    config = load_network_config(path)
    assert config.input == InputContract("RGB", 224, 224, "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert config.pretrained == "resnet18.safetensors" and config.num_classes == 2
    assert "input contract of the pretrained weights" in path.read_text()
    assert run_main(main, [*args, "--size", "96", "--overwrite"]) == 0
    assert load_network_config(path).input.shape == (3, 96, 96)


@pytest.mark.parametrize("params, said", [
    ({"channels": [[1, 2], {"a": 1}], "dropout": 0.1}, r"arch.params: int\(\) argument must be"),
    ({"channels": [8, 16], "dropout": "banana"}, r"arch.params: '<=' not supported"),
])
def test_inspect_data_write_network_checks_the_values_against_the_constructor_before_writing(params, said, tmp_path):
    from networks.writer import NetworkRequest, check_network_request

    target = tmp_path / "bad.yaml"
    with pytest.raises(UserError, match=said):
        check_network_request(NetworkRequest(str(target), "small_cnn", params, False, None, None))
    assert not target.exists()
