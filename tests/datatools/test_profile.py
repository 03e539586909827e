"""Input statistics and sanity warnings: measured against numpy, found on crafted data sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.contract import InputContract
from common.images import load_samples
from common.lists import load_dataset, read_split
from datatools.importer import import_dataset
from datatools.inspect import StatsSettings, inspect_dataset
from datatools.profile import ChannelStats, FileProfile, quick_check, tiny_split_note
from tests.photo_folder import write_photo_folder


@pytest.fixture(scope="module")
def flowers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated photo folder imported as a data set (mixed formats, modes and sizes)."""
    base = tmp_path_factory.mktemp("flowers")
    return import_dataset("folder", write_photo_folder(base / "photos"), base / "flowers").root


def shortcut_set(tmp_path: Path) -> Path:
    """Four classes of 12 files: 'gray' all grayscale, 'png' all PNG, the others mixed RGB JPEGs of several sizes."""
    rng = np.random.default_rng(0)
    source = tmp_path / "source"
    for name in ("gray", "png", "plain", "other"):
        (source / name).mkdir(parents=True)
        for index in range(12):
            size = (20 + index % 4 * 3, 18 + index % 3 * 5)
            image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
            if name == "gray":
                image = image.convert("L")
            image.save(source / name / f"{index}.{'png' if name == 'png' else 'jpg'}")
    return import_dataset("folder", source, tmp_path / "shortcuts").root


@pytest.mark.slow
@pytest.mark.parametrize(("color_mode", "size"), [("RGB", (20, 24)), ("L", (16, 16))])
def test_statistics_equal_numpy_on_the_same_decoded_images(flowers, tmp_path, color_mode, size):
    stats = StatsSettings(size[0], size[1], color_mode, "bicubic")
    result = inspect_dataset(str(flowers), out=tmp_path / "report", stats=stats)
    dataset = load_dataset(flowers)
    contract = InputContract(color_mode, size[0], size[1], "bicubic", (0.0,) * len(result.contract.mean),
                             (1.0,) * len(result.contract.mean))
    images, _, _ = load_samples(dataset, read_split(dataset, "train"), contract)  # (N, C, H, W)
    pixels = images.astype(np.float64) / 255
    np.testing.assert_allclose(result.contract.mean, pixels.mean(axis=(0, 2, 3)), atol=5e-5)  # 4 decimals
    np.testing.assert_allclose(result.contract.std, pixels.std(axis=(0, 2, 3)), atol=5e-5)
    assert result.stats_images == len(images) == 84
    assert (result.contract.height, result.contract.width, result.contract.color_mode) == (*size, color_mode)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["statistics"]["mean"] == list(result.contract.mean) and report["statistics"]["images"] == 84


def test_streaming_statistics_match_all_pixels_at_once():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (3, 7, 5), dtype=np.uint8) for _ in range(50)]
    images += [np.full((3, 7, 5), 250, dtype=np.uint8)] * 30  # a shifted block: naive sums lose precision here
    stats = ChannelStats(3)
    for image in images:
        stats.add(image)
    everything = np.stack(images).astype(np.float64) / 255
    np.testing.assert_allclose(stats.mean, everything.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(stats.std, everything.std(axis=(0, 2, 3)), rtol=1e-12)
    assert stats.pixels == 80 * 35


@pytest.mark.slow
def test_mixed_photos_raise_no_shortcut_and_pick_colour(flowers, tmp_path):
    result = inspect_dataset(str(flowers), out=tmp_path / "report")
    assert result.problems == []
    assert result.contract.color_mode == "RGB" and result.profile.colour_share() == pytest.approx(0.8)
    profile = result.profile.to_dict()
    assert profile["temple"]["format"] == {"JPEG": 20, "PNG": 20}
    assert profile["temple"]["colour mode"] == {"RGB": 32, "L": 8}
    # val holds 12 images of 3 classes: a note, never an imbalance figure
    assert any(n.startswith("val: 12 images for 3 classes") for n in result.notes)
    assert "image_profile.csv" in {p.name for p in (tmp_path / "report").iterdir()}


@pytest.mark.slow
def test_shortcuts_and_colour_mode_mismatch_are_warned(tmp_path):
    root = shortcut_set(tmp_path)
    result = inspect_dataset(str(root), out=tmp_path / "report", stats=StatsSettings(color_mode="L"))
    shortcuts = [p for p in result.problems if p.startswith("shortcut:")]
    assert len(shortcuts) == 2
    assert "class 'gray' have colour mode L, against 0% of the other classes' files" in shortcuts[0]
    assert "class 'png' have format PNG, against 0%" in shortcuts[1]
    (mismatch,) = [p for p in result.problems if p.startswith("grayscale contract")]
    assert "75% of the files are in colour" in mismatch
    line = quick_check(load_dataset(root), read_split(load_dataset(root), "train"), "L")
    assert line.startswith("data check (headers of 33 of 33 train images): 3 warning(s): shortcut")
    assert "pipenv run inspect-data --dataset shortcuts" in line


@pytest.mark.slow
def test_colour_contract_on_grayscale_digits_is_warned_and_auto_picks_grayscale(digits_root, tmp_path):
    auto = inspect_dataset(str(digits_root), out=tmp_path / "a", per_class=1, stats=StatsSettings(16, 16))
    assert auto.problems == [] and auto.contract.color_mode == "L"
    assert auto.contract.mean == pytest.approx((0.305,), abs=0.002)  # what digits_cnn.yaml holds
    forced = inspect_dataset(str(digits_root), out=tmp_path / "b", per_class=1, stats=StatsSettings(16, 16, "RGB"))
    assert [p for p in forced.problems if p.startswith("colour contract (color_mode RGB) on grayscale data")]
    dataset = load_dataset(digits_root)
    assert quick_check(dataset, read_split(dataset, "train"), "L").endswith("no colour-mode mismatch")
    assert "headers of 200 of 1257 train images" in quick_check(dataset, read_split(dataset, "train"), "L")


def test_a_uniform_class_is_no_shortcut_when_the_others_share_it():
    profile = FileProfile(("a", "b"))
    for label in (0, 1):
        for _ in range(6):
            profile.add(label, "RGB", "JPEG", (32, 32))
    assert profile.shortcut_warnings() == []
    for _ in range(4):  # a few files are too few to judge
        profile.add(1, "L", "PNG", (10, 10))
    small = FileProfile(("a", "b"))
    for _ in range(4):
        small.add(0, "L", "PNG", (1, 1))
        small.add(1, "RGB", "JPEG", (2, 2))
    assert small.shortcut_warnings() == []
    assert tiny_split_note("dev", 64, 10) is not None and tiny_split_note("val", 180, 10) is None


@pytest.mark.slow
def test_tiny_splits_get_a_note_instead_of_an_imbalance_figure(digits_root, tmp_path):
    copy = tmp_path / "digits"
    shutil.copytree(digits_root, copy)
    lines = (copy / "lists" / "dev.txt").read_text().splitlines()
    keep = [line for line in lines if not line.endswith((" 0", " 1"))] + [l for l in lines if l.endswith(" 0")][:2]
    (copy / "lists" / "dev.txt").write_text("\n".join(keep) + "\n")  # 82 images; class 0: 2, class 1: none
    result = inspect_dataset(str(copy), out=tmp_path / "report", per_class=1)
    assert not [p for p in result.problems if p.startswith("dev")]
    assert any(n.startswith("dev: 82 images for 10 classes (8.2 per class): too few") for n in result.notes)


def test_odd_files_stand_out_by_a_rare_mode_or_format_or_a_tiny_size():
    from datatools.profile import odd_files

    headers = {f"raw/{i}.jpg": ("RGB", "JPEG", (64, 48)) for i in range(120)}
    headers["raw/cmyk.jpg"] = ("CMYK", "JPEG", (64, 48))
    headers["raw/icon.gif"] = ("P", "GIF", (8, 8))
    odd = odd_files(headers)
    assert set(odd) == {"raw/cmyk.jpg", "raw/icon.gif"}
    assert odd["raw/cmyk.jpg"] == "colour mode CMYK (1 of 122 files)"
    assert odd["raw/icon.gif"] == ("colour mode P (1 of 122 files); format GIF (1 of 122 files); 8x8 pixels, far "
                                   "smaller than most (median shorter side 48)")
    few = {path: header for path, header in list(headers.items())[-12:]}  # too few files for rarity to mean much
    assert set(odd_files(few)) == {"raw/icon.gif"} and odd_files({}) == {}
