"""Folder import: a class-per-folder tree becomes a data set; unreadable files are left out and reported."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.errors import UserError
from common.lists import load_dataset, read_split
from common.paths import PROJECT_ROOT
from common.splits import split_indices
from datatools.importer import SplitSettings, import_dataset
from tests.commands import command_line
from tests.photo_folder import CLASSES, UNREADABLE, write_photo_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated photo folder: 3 classes of 40 readable images, 2 unreadable files."""
    return write_photo_folder(tmp_path_factory.mktemp("photos") / "photos")


def splits_of(root: Path) -> dict[str, list]:
    dataset = load_dataset(root)
    return {split: read_split(dataset, split) for split in ("train", "val", "test", "dev")}


def test_every_readable_image_lands_in_one_stratified_split(photos, tmp_path):
    before = sorted((p.relative_to(photos), p.stat().st_mtime_ns) for p in photos.rglob("*"))
    result = import_dataset("folder", photos, tmp_path / "flowers")
    assert load_dataset(result.root).class_names == CLASSES
    assert result.class_counts == dict.fromkeys(CLASSES, 40)
    assert sorted(entry.path for entry in result.left_out) == sorted(UNREADABLE)
    splits = splits_of(result.root)
    assert {name: len(samples) for name, samples in splits.items()} == result.split_sizes
    assert result.split_sizes == {"train": 84, "val": 12, "test": 24, "dev": 30}
    paths = {name: {s.path for s in samples} for name, samples in splits.items()}
    assert not (paths["train"] & paths["val"] or paths["train"] & paths["test"] or paths["val"] & paths["test"])
    assert paths["dev"] <= paths["train"]
    everything = paths["train"] | paths["val"] | paths["test"]
    expected = {f"raw/{p.relative_to(photos).as_posix()}" for p in photos.rglob("*") if p.is_file()}
    assert everything == expected - {f"raw/{u}" for u in UNREADABLE}
    assert any("/more/" in path for path in everything)  # nested folders are kept
    for name, samples in splits.items():  # stratified: each class has the same share of every split
        assert np.bincount([s.label for s in samples]).tolist() == [len(samples) // 3] * 3, name
    labels = {s.path: s.label for s in splits["train"]}
    assert all(CLASSES[label] == path.split("/")[1] for path, label in labels.items())
    record = json.loads((result.root / "prepare.json").read_text())
    assert record["link"] == "copy" and len(record["left_out"]) == 2 and record["split_sizes"] == result.split_sizes
    assert sorted((p.relative_to(photos), p.stat().st_mtime_ns) for p in photos.rglob("*")) == before  # untouched


def test_the_split_is_seeded(photos, tmp_path):
    first = splits_of(import_dataset("folder", photos, tmp_path / "a").root)
    again = splits_of(import_dataset("folder", photos, tmp_path / "b").root)
    other = splits_of(import_dataset("folder", photos, tmp_path / "c", settings=SplitSettings(seed=1)).root)
    assert [s.path for s in first["test"]] == [s.path for s in again["test"]]
    assert [s.path for s in first["test"]] != [s.path for s in other["test"]]


@pytest.mark.parametrize("link", ["copy", "symlink", "hardlink"])
def test_link_modes_never_move_the_originals(photos, tmp_path, link):
    root = import_dataset("folder", photos, tmp_path / "ds", link=link).root
    copied, original = root / "raw" / "temple" / "000.jpg", photos / "temple" / "000.jpg"
    assert original.is_file() and copied.read_bytes() == original.read_bytes()
    assert copied.is_symlink() == (link == "symlink")
    if link == "symlink":
        assert Path(os.readlink(copied)) == original.resolve()
    same_inode = copied.stat().st_ino == original.stat().st_ino
    assert same_inode == (link in ("symlink", "hardlink"))


def test_refusals_leave_everything_as_it_was(photos, tmp_path):
    existing = tmp_path / "flowers"
    existing.mkdir()
    (existing / "mine.txt").write_text("precious")
    with pytest.raises(UserError, match="already exists; choose another --name"):
        import_dataset("folder", photos, existing)
    assert [p.name for p in existing.iterdir()] == ["mine.txt"]
    with pytest.raises(UserError, match="no such folder"):
        import_dataset("folder", tmp_path / "nowhere", tmp_path / "x")
    with pytest.raises(UserError, match="inside"):
        import_dataset("folder", photos, photos / "data")
    with pytest.raises(UserError, match="--link"):
        import_dataset("folder", photos, tmp_path / "x", link="move")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flowers"]  # no staging folder left behind


def test_too_few_classes_or_images_name_the_folder(tmp_path):
    source = tmp_path / "src"
    for index in range(3):
        (source / "cat").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (index, 0, 0)).save(source / "cat" / f"{index}.png")
    with pytest.raises(UserError, match="found 1 class folder"):
        import_dataset("folder", source, tmp_path / "x")
    (source / "dog").mkdir()
    Image.new("RGB", (8, 8)).save(source / "dog" / "only.png")
    (source / "dog" / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(UserError, match=r"fewer than 3 readable images.*'dog' \(1\)"):
        import_dataset("folder", source, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_split_fractions_and_small_classes():
    labels = np.repeat(np.arange(4), [50, 30, 12, 8])
    splits = split_indices(labels, seed=3, test_fraction=0.25, val_fraction=0.15, dev_per_class=10)
    assert len(splits["test"]) == 25 and len(splits["val"]) == 15
    assert np.all(np.abs(np.bincount(labels[splits["test"]]) - 0.25 * np.bincount(labels)) <= 1)
    in_train = np.bincount(labels[splits["train"]])
    assert in_train.tolist()[2:] == [7, 5]
    assert np.bincount(labels[splits["dev"]]).tolist() == np.minimum(in_train, 10).tolist()  # small classes: all
    assert set(splits["dev"]) <= set(splits["train"])
    with pytest.raises(UserError, match="val \\+ test < 1"):
        split_indices(labels, 0, test_fraction=0.6, val_fraction=0.5)
    with pytest.raises(UserError, match="cannot split 6 images of 3 classes"):
        split_indices(np.repeat(np.arange(3), 2), 0)


@pytest.mark.slow
def test_the_command_line(photos, tmp_path):
    env = {**os.environ, "IMAGEPIPE_DATA": str(tmp_path / "data")}

    def prepare(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(command_line("prepare-data", *args), cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    done = prepare("--from-folder", str(photos), "--name", "flowers", "--link", "symlink", "--test", "0.25")
    assert done.returncode == 0, done.stderr
    assert "120 images of 3 classes" in done.stdout and "test 30" in done.stdout
    assert "2 file(s) left out" in done.stdout and "temple/broken.jpg" in done.stdout
    assert (tmp_path / "data" / "flowers" / "raw" / "flower" / "000.jpg").is_symlink()
    again = prepare("--from-folder", str(photos), "--name", "flowers")
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert prepare("--from-folder", str(photos)).returncode == 2
    assert prepare("--name", "flowers").returncode == 2
