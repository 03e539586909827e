"""inspect-data on the bundled digits: clean as shipped; planted problems are found."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from common.errors import UserError
from common.lists import load_dataset, read_split
from datatools.inspect import inspect_dataset


@pytest.mark.slow
def test_the_bundled_digits_are_clean_and_every_output_is_written(digits_root, tmp_path):
    result = inspect_dataset(str(digits_root), out=tmp_path / "report")
    assert result.problems == []
    assert result.counts["train"]["0"] + sum(v for k, v in result.counts["train"].items() if k != "0") == 1257
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"class_counts.png", "class_counts.csv", "report.json", "report.txt",
            "samples_train.png", "samples_val.png", "samples_test.png", "samples_dev.png"} <= names
    assert (tmp_path / "report" / "class_counts.csv").read_text().startswith("class,dev,test,train,val")


@pytest.mark.slow
def test_planted_problems_are_found(digits_root, tmp_path):
    copy = tmp_path / "digits"
    shutil.copytree(digits_root, copy)
    dataset = load_dataset(copy)
    train_sample = read_split(dataset, "train")[0]
    # 1. the same image in train and test, re-encoded under another name
    with Image.open(copy / train_sample.path) as image:
        image.save(copy / "raw" / "leaked.bmp")
    with open(copy / "lists" / "test.txt", "a") as stream:
        stream.write(f"raw/leaked.bmp {train_sample.label}\n")
    # 2. an unreadable image in val
    victim = read_split(dataset, "val")[3]
    (copy / victim.path).write_bytes(b"not an image")
    # 3. class imbalance in val: keep a single image of class 0
    lines = (copy / "lists" / "val.txt").read_text().splitlines()
    zeros = [line for line in lines if line.endswith(" 0")]
    (copy / "lists" / "val.txt").write_text("\n".join(l for l in lines if l not in zeros[1:]) + "\n")

    result = inspect_dataset(str(copy), out=tmp_path / "report")
    (leak,) = result.duplicates
    assert {(e["split"], e["path"]) for e in leak} >= {("train", train_sample.path), ("test", "raw/leaked.bmp")}
    assert any(victim.path in u and f"val.txt:{victim.line}" in u for u in result.unreadable)
    assert any(p.startswith("val: class imbalance") and "smallest '0' 1" in p for p in result.problems)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(report["problems"]) == len(result.problems) == 3


@pytest.mark.parametrize("per_class", [0, 65, 100_000])
def test_inspect_data_per_class_beyond_the_bound_is_refused_before_anything_is_written(digits_root, tmp_path,
                                                                                        per_class):
    with pytest.raises(UserError, match="--per-class: images per class in the grids must be 1 to 64"):
        inspect_dataset(str(digits_root), out=tmp_path / "report", per_class=per_class)
    assert not (tmp_path / "report").exists()
