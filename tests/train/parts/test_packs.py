"""Packs without training: bit for bit what decoding gives, never used when stale or damaged, nothing left by a kill."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from common.contract import InputContract
from common.errors import UserError
from common.files import file_sha256
from common.images import load_samples
from common.lists import load_dataset, read_split
from common.paths import PROJECT_ROOT
from networks import load_network_config
from tests.commands import command_line
from train.data.packs import PackSplit, open_pack_split, pack_folder, write_pack

CONTRACT = InputContract("L", 16, 16, "bilinear", (0.3,), (0.4,))


@pytest.fixture
def digits(digits_root, tmp_path):
    """A private copy of the digits (packs are written into the data set folder)."""
    shutil.copytree(digits_root, tmp_path / "digits")
    return load_dataset(tmp_path / "digits")


@pytest.mark.slow
def test_a_pack_holds_exactly_what_decoding_gives(digits):
    folder = write_pack(digits, CONTRACT, ["train", "val"])
    assert folder == digits.root / "packs" / "L-16x16-bilinear"
    assert sorted(p.name for p in folder.iterdir()) == ["index.json", "train.images.npy", "train.labels.npy",
                                                        "val.images.npy", "val.labels.npy"]
    for split in ("train", "val"):
        packed = open_pack_split(digits, split, CONTRACT, "error")
        assert isinstance(packed, PackSplit)
        images, labels, kept = load_samples(digits, read_split(digits, split), CONTRACT)
        np.testing.assert_array_equal(packed.load(), images)
        np.testing.assert_array_equal(packed.labels, labels)
        assert packed.paths == [s.path for s in kept]
        rows = np.array([5, 0, len(packed) - 1, 5])
        np.testing.assert_array_equal(packed.read(rows), images[rows])  # the bounded reader agrees
    index = json.loads((folder / "index.json").read_text())
    assert index["decoding"]["color_mode"] == "L" and len(index["splits"]["train"]["list_sha256"]) == 64
    assert index["created"] and index["tool"] == "pipenv run pack"
    assert "index.json is unreadable or has no split 'test'" in open_pack_split(digits, "test", CONTRACT, "error")


def test_another_contract_has_its_own_pack(digits):
    write_pack(digits, CONTRACT, ["val"])
    bigger = InputContract("L", 20, 20, "bilinear", (0.3,), (0.4,))
    assert open_pack_split(digits, "val", bigger, "error").startswith("no pack in")
    same_pixels = InputContract("L", 16, 16, "bilinear", (0.5,), (0.1,))  # mean and std live in the network
    assert isinstance(open_pack_split(digits, "val", same_pixels, "error"), PackSplit)


def damage(folder, how):
    if how == "list":
        with open(folder.parent.parent / "lists" / "val.txt", "a") as stream:
            stream.write("# a comment changes the list file\n")
    elif how == "truncated":
        path = folder / "val.images.npy"
        path.write_bytes(path.read_bytes()[:-100])
    elif how == "flipped":
        path = folder / "val.images.npy"
        data = bytearray(path.read_bytes())
        data[-10] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "decoder":
        index = json.loads((folder / "index.json").read_text())
        index["decoding"]["pillow"] = "1.0"
        (folder / "index.json").write_text(json.dumps(index))
    elif how == "index":
        (folder / "index.json").write_text("{not json")
    elif how == "image":
        image = folder.parent.parent / json.loads((folder / "index.json").read_text())["splits"]["val"]["paths"][7]
        image.write_bytes(image.read_bytes() + b"\0")  # edited in place, same path
    elif how == "field":
        index = json.loads((folder / "index.json").read_text())
        del index["splits"]["val"]["files"]
        (folder / "index.json").write_text(json.dumps(index))
    elif how == "replaced":  # cp of another image of the same size, then touch -r: size and mtime as packed
        paths = json.loads((folder / "index.json").read_text())["splits"]["val"]["paths"]
        image, other = (folder.parent.parent / paths[7], folder.parent.parent / paths[8])
        kept = image.stat()
        with open(image, "r+b") as stream:
            stream.write(other.read_bytes()[:kept.st_size].ljust(kept.st_size, b"\0"))
        os.utime(image, ns=(kept.st_atime_ns, kept.st_mtime_ns))
        assert (image.stat().st_size, image.stat().st_mtime_ns) == (kept.st_size, kept.st_mtime_ns)
    elif how == "labels":  # labels changed with the index's record of them: consistent, but not the list's
        index = json.loads((folder / "index.json").read_text())
        labels = np.load(folder / "val.labels.npy")
        labels[3] = (labels[3] + 1) % 10
        np.save(folder / "val.labels.npy", labels)
        entry = index["splits"]["val"]
        entry["bytes"]["val.labels.npy"] = (folder / "val.labels.npy").stat().st_size
        entry["sha256"]["val.labels.npy"] = file_sha256(folder / "val.labels.npy")
        (folder / "index.json").write_text(json.dumps(index))


@pytest.mark.parametrize(("how", "reason"), [
    ("list", r"lists/val\.txt changed since it was packed; rebuild it"),
    ("truncated", r"val\.images\.npy is missing or truncated"),
    ("flipped", r"val\.images\.npy does not match its recorded sha256 \(damaged\)"),
    ("decoder", r"made for .*'pillow': '1\.0'.* but decoding now is"),
    ("index", r"index\.json is unreadable"),
    ("image", r"raw/\d/\d+\.png changed since it was packed \(its size, modification or change time, or inode\)"),
    ("field", r"index\.json: damaged \(a field of split 'val' is missing or malformed\)"),
    ("replaced", r"raw/\d/\d+\.png changed since it was packed \(its size, modification or change time, or inode\)"),
    ("labels", r"val\.labels\.npy disagrees with the list file: raw/\d/\d+\.png has label \d in the pack but \d in "
               r".*lists/val\.txt"),
])
def test_a_stale_or_damaged_pack_is_never_used_and_says_why(digits, how, reason):
    folder = write_pack(digits, CONTRACT, ["val"])
    damage(folder, how)
    found = open_pack_split(digits, "val", CONTRACT, "error")
    assert isinstance(found, str)
    assert re.search(reason, found), found


def test_unreadable_images_are_skipped_and_recorded_or_stop_the_pack(digits):
    victim = read_split(digits, "val")[3]
    (digits.root / victim.path).write_bytes(b"not an image")
    with pytest.raises(UserError, match=rf"val\.txt:{victim.line}: cannot decode"):
        write_pack(digits, CONTRACT, ["val"])
    assert not pack_folder(digits, CONTRACT).exists()  # nothing half-written
    write_pack(digits, CONTRACT, ["val"], on_unreadable="skip")
    packed = open_pack_split(digits, "val", CONTRACT, "skip")
    assert len(packed) == 179 and packed.unreadable == [f"{victim.source}:{victim.line}"]
    assert victim.path not in packed.paths
    assert "on_unreadable is error" in open_pack_split(digits, "val", CONTRACT, "error")


def test_colour_images_pack_as_decoding_gives_them(write_dataset):
    rng = np.random.default_rng(0)
    images = {f"raw/{i}.{ext}": rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
              for i, (h, w, ext) in enumerate([(31, 47, "png"), (64, 20, "jpg"), (12, 12, "bmp")])}
    images["raw/gray.png"] = rng.integers(0, 256, (9, 9), dtype=np.uint8)
    root = write_dataset(classes=["a", "b"], images=images,
                         lists={"train": "raw/0.png 0\nraw/1.jpg 1\nraw/2.bmp 0\nraw/gray.png 1\n"})
    dataset = load_dataset(root)
    contract = InputContract("RGB", 24, 32, "bicubic", (0.5,) * 3, (0.25,) * 3)
    write_pack(dataset, contract, ["train"], workers=2)
    decoded, _, _ = load_samples(dataset, read_split(dataset, "train"), contract)
    np.testing.assert_array_equal(open_pack_split(dataset, "train", contract, "error").load(), decoded)


def test_a_killed_pack_leaves_nothing_that_looks_complete(digits, tmp_path):
    network = tmp_path / "big.yaml"  # a large size, so that packing takes long enough to be killed
    network.write_text("version: 1\narch: {name: small_cnn, params: {channels: [8]}}\nnum_classes: 10\n"
                       "input: {color_mode: RGB, height: 160, width: 160, interpolation: lanczos, "
                       "mean: [0.3, 0.3, 0.3], std: [0.4, 0.4, 0.4]}\n")
    command = [*command_line("pack"), "--dataset", str(digits.root), "--network", str(network),
               "--workers", "1", "--no-progress"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((digits.root / "packs").glob(".*.staging-*/*.npy")):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    contract = load_network_config(network).input
    target = pack_folder(digits, contract)
    assert not target.exists(), "a killed pack must not leave a pack behind"
    debris = list((digits.root / "packs").glob(".*.staging-*"))
    assert len(debris) == 1
    write_pack(digits, contract, ["dev"])  # the next pack removes the dead process's staging folder
    assert not debris[0].exists() and (target / "index.json").is_file()
