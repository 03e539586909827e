"""The bundled digits data set: real files, stratified seeded splits, idempotent and never destructive."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from common.contract import InputContract
from common.digits import ensure_digits, prepare_digits
from common.errors import UserError
from common.images import load_samples
from common.lists import load_dataset, read_split

NATIVE = InputContract("L", 8, 8, "bilinear", (0.5,), (0.5,))


@pytest.mark.slow
def test_splits_are_disjoint_stratified_and_documented_sizes(digits_root):
    dataset = load_dataset(digits_root)
    assert dataset.class_names == tuple(str(d) for d in range(10))
    splits = {name: read_split(dataset, name) for name in ("train", "val", "test", "dev")}
    assert {name: len(s) for name, s in splits.items()} == {"train": 1257, "val": 180, "test": 360, "dev": 100}
    paths = {name: {s.path for s in samples} for name, samples in splits.items()}
    assert not paths["train"] & paths["val"] and not paths["train"] & paths["test"] and not paths["val"] & paths["test"]
    assert len(paths["train"] | paths["val"] | paths["test"]) == 1797
    assert paths["dev"] <= paths["train"]
    assert np.bincount([s.label for s in splits["dev"]]).tolist() == [10] * 10
    test_counts = np.bincount([s.label for s in splits["test"]], minlength=10)
    all_counts = np.bincount(load_digits().target)
    assert np.all(np.abs(test_counts - 0.2 * all_counts) <= 1)


def test_images_hold_the_scikit_learn_pixels(digits_root):
    dataset = load_dataset(digits_root)
    samples = read_split(dataset, "test")
    images, labels, _ = load_samples(dataset, samples, NATIVE)
    reference = load_digits()
    for sample, image, label in zip(samples[:20], images, labels):
        index = int(sample.path.rsplit("/", 1)[1].removesuffix(".png"))
        assert label == reference.target[index]
        np.testing.assert_array_equal(image[0], np.rint(reference.images[index] * 255 / 16).astype(np.uint8))


@pytest.mark.slow
def test_rerun_is_unchanged_and_a_different_seed_is_refused(tmp_path):
    root = tmp_path / "digits"
    assert prepare_digits(root).action == "created"
    before = sorted(p.stat().st_mtime_ns for p in root.rglob("*"))
    assert prepare_digits(root).action == "unchanged"
    assert sorted(p.stat().st_mtime_ns for p in root.rglob("*")) == before
    with pytest.raises(UserError, match=r"already exists and differs .*lists/.*other content.*--force"):
        prepare_digits(root, seed=1)
    assert prepare_digits(root).action == "unchanged"
    assert [p.name for p in tmp_path.iterdir()] == ["digits"]  # no staging folder left behind


@pytest.mark.slow
def test_a_users_folder_is_never_overwritten_and_force_keeps_a_backup(tmp_path):
    root = tmp_path / "digits"
    root.mkdir()
    (root / "my_notes.txt").write_text("precious")
    with pytest.raises(UserError, match="differs"):
        prepare_digits(root)
    assert (root / "my_notes.txt").read_text() == "precious"
    result = prepare_digits(root, force=True)
    assert result.action == "replaced" and result.backup is not None
    assert (result.backup / "my_notes.txt").read_text() == "precious"
    assert len(read_split(load_dataset(root), "train")) == 1257


@pytest.mark.slow
def test_ensure_digits_prepares_only_when_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEPIPE_DATA", str(tmp_path / "data"))
    root = ensure_digits()
    assert root == tmp_path / "data" / "digits" and (root / "lists" / "dev.txt").is_file()
    (root / "classes.txt").write_text("edited\n")
    assert ensure_digits() == root and (root / "classes.txt").read_text() == "edited\n"
