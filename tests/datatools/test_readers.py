"""The reader seam: a CSV/TSV manifest imports like a folder, bad rows are named with their lines, and a new
format is one module."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.errors import FileProblems, UserError
from common.lists import load_dataset, read_prepare_record, read_split
from datatools.importer import import_dataset
from datatools.readers import READERS, LabelledImage, Reader, SourceImages, register_reader
from tests.photo_folder import CLASSES, write_photo_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_photo_folder(tmp_path_factory.mktemp("photos") / "photos", per_class=12)


def manifest_of(photos: Path, folder: Path, delimiter: str = ",", split: bool = False) -> tuple[Path, list[str]]:
    """Copy the readable photos flat into ``folder/images/`` and list them in a manifest with class names."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for index, path in enumerate(sorted(p for p in photos.rglob("*") if p.suffix in (".jpg", ".png"))):
        if path.name == "broken.jpg":
            continue
        label = path.relative_to(photos).parts[0]
        shutil.copy(path, folder / "images" / f"{index:03d}{path.suffix}")
        cells = [f"images/{index:03d}{path.suffix}", label] + ([("train", "val", "test")[index % 3]] if split else [])
        rows.append(delimiter.join(cells))
    header = delimiter.join(["file", "label"] + (["split"] if split else []))
    suffix = ".tsv" if delimiter == "\t" else ".csv"
    manifest = folder / f"labels{suffix}"
    manifest.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return manifest, rows


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_a_manifest_imports_every_row_with_its_class_name(photos, tmp_path, delimiter):
    manifest, rows = manifest_of(photos, tmp_path / "src", delimiter)
    result = import_dataset("csv", manifest, tmp_path / "ds")
    dataset = load_dataset(result.root)
    assert dataset.class_names == CLASSES and sum(result.class_counts.values()) == len(rows) == 36
    listed = {s.path: dataset.class_names[s.label] for split in ("train", "val", "test") for s in
              read_split(dataset, split)}
    expected = {f"raw/{row.split(delimiter)[0]}": row.split(delimiter)[1] for row in rows}
    assert listed == expected
    assert all((result.root / path).is_file() for path in listed)
    record = read_prepare_record(result.root)
    assert record.reader == "csv" and record.source == str(manifest.resolve()) and record.seed == 0


def test_the_split_column_is_honoured_and_dev_comes_from_train(photos, tmp_path):
    manifest, rows = manifest_of(photos, tmp_path / "src", split=True)
    dataset = load_dataset(import_dataset("csv", manifest, tmp_path / "ds").root)
    wanted = {f"raw/{row.split(',')[0]}": row.split(",")[2] for row in rows}
    for split in ("train", "val", "test"):
        assert {s.path for s in read_split(dataset, split)} == {p for p, s in wanted.items() if s == split}
    assert {s.path for s in read_split(dataset, "dev")} <= {s.path for s in read_split(dataset, "train")}


def test_bad_rows_are_each_reported_with_their_line_and_nothing_is_written(photos, tmp_path):
    manifest, rows = manifest_of(photos, tmp_path / "src", split=True)
    bad = [*rows[:3],
           "images/missing.png,flower,train",      # line 5: no such file
           f"{rows[0].split(',')[0]},temple,val",  # line 6: the path of line 2 again
           f"{rows[1].split(',')[0]},,train",       # line 7: no label
           f"{rows[2].split(',')[0]}x,violet,holdout",  # line 8: unknown split (and a missing file)
           "a,b"]                                  # line 9: too few fields
    manifest.write_text("\n".join(["file,label,split", *bad]) + "\n")
    with pytest.raises(FileProblems) as raised:
        import_dataset("csv", manifest, tmp_path / "ds")
    text = str(raised.value)
    assert "labels.csv:5: image not found" in text
    assert "labels.csv:6: 'images/" in text and "is listed twice (first on line 2)" in text
    assert "labels.csv:7: empty label" in text
    assert "labels.csv:8: unknown split 'holdout'" in text
    assert "labels.csv:9: 2 fields, the header has 3" in text
    assert not (tmp_path / "ds").exists()


def test_a_manifest_needs_its_columns_and_a_consistent_split_column(photos, tmp_path):
    manifest, rows = manifest_of(photos, tmp_path / "src", split=True)
    manifest.write_text("image_name,category\nimages/000.jpg,flower\n")
    with pytest.raises(UserError, match=r"labels\.csv:1: expected a header naming the image column \(file or path\)"):
        import_dataset("csv", manifest, tmp_path / "ds")
    manifest.write_text("\n".join(["file,label,split", rows[0], rows[1].rsplit(",", 1)[0] + ","]) + "\n")
    with pytest.raises(FileProblems, match=r"labels\.csv:3: empty split"):
        import_dataset("csv", manifest, tmp_path / "ds")


def test_absolute_paths_outside_the_manifest_folder_go_under_external(photos, tmp_path):
    manifest, rows = manifest_of(photos, tmp_path / "src")
    outside = tmp_path / "elsewhere" / "x.png"
    outside.parent.mkdir()
    Image.fromarray(np.zeros((12, 12, 3), dtype=np.uint8)).save(outside)
    manifest.write_text(manifest.read_text() + f"{outside},flower\n")
    root = import_dataset("csv", manifest, tmp_path / "ds").root
    expected = f"raw/external/{outside.relative_to(outside.anchor).as_posix()}"
    assert (root / expected).is_file()


def test_prepare_data_from_csv_two_images_with_one_raw_name_is_refused_naming_both_lines(photos, tmp_path):
    manifest, rows = manifest_of(photos, tmp_path / "src")
    outside = tmp_path / "elsewhere" / "x.png"  # goes to raw/external/<its path>
    inside = manifest.parent / "external" / outside.relative_to(outside.anchor)  # goes there too
    for path, value in ((outside, 0), (inside, 255)):
        path.parent.mkdir(parents=True)
        Image.fromarray(np.full((12, 12, 3), value, dtype=np.uint8)).save(path)
    relative = inside.relative_to(manifest.parent).as_posix()
    manifest.write_text(manifest.read_text() + f"{outside},flower\n{relative},leaf\n")
    with pytest.raises(FileProblems, match=rf"labels.csv:{len(rows) + 3}: .* would be imported as raw/external/.*, "
                                           rf"as the different image of line {len(rows) + 2}"):
        import_dataset("csv", manifest, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_prepare_data_from_csv_one_image_under_two_names_is_refused_naming_both_lines(photos, tmp_path, kind):
    manifest, rows = manifest_of(photos, tmp_path / "src")
    first = rows[0].split(",")[0]
    other = manifest.parent / "images" / "again.png"
    (other.symlink_to if kind == "symlink" else other.hardlink_to)(manifest.parent / first)
    manifest.write_text(manifest.read_text() + "images/again.png,leaf\n")
    with pytest.raises(FileProblems, match=rf"labels.csv:{len(rows) + 2}: .*again.png is the image of line 2 again"):
        import_dataset("csv", manifest, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_prepare_data_from_csv_with_one_class_is_refused(photos, tmp_path):
    manifest, rows = manifest_of(photos, tmp_path / "src")
    manifest.write_text("file,label\n" + "".join(f"{row.split(',')[0]},flower\n" for row in rows))
    with pytest.raises(UserError, match="every image has the class 'flower'; a classifier needs at least two"):
        import_dataset("csv", manifest, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_a_new_format_is_one_registered_class(tmp_path, photos):
    @register_reader("test_pairs")
    class Pairs(Reader):
        """A text file of ``<label> <path>`` lines (a format made up for this test)."""

        option_help = "a text file of '<label> <path>' lines"

        def __init__(self, source: Path, prefix: str = ""):
            super().__init__(source)
            self.prefix = prefix

        def read(self) -> SourceImages:
            pairs = [line.split(" ", 1) for line in self.source.read_text().splitlines()]
            images = [LabelledImage(Path(path), self.prefix + label, f"{label}/{Path(path).name}") for label, path in pairs]
            return SourceImages(images, sorted({i.label for i in images}), description="pairs")

    try:
        source = tmp_path / "pairs.txt"
        files = sorted(p for p in photos.rglob("*") if p.suffix in (".jpg", ".png") and p.name != "broken.jpg")
        source.write_text("\n".join(f"{p.relative_to(photos).parts[0]} {p}" for p in files))
        from datatools.__main__ import prepare_parser

        assert "--from-test_pairs" in prepare_parser().format_help()
        root = import_dataset("test_pairs", source, tmp_path / "ds", options={"prefix": "c-"}).root
        assert load_dataset(root).class_names == tuple(f"c-{c}" for c in CLASSES)
        with pytest.raises(UserError, match=r"unknown parameter\(s\) \['sep'\] for reader 'test_pairs'"):
            import_dataset("test_pairs", source, tmp_path / "other", options={"sep": ","})
    finally:
        READERS.unregister("test_pairs")


def test_an_unknown_format_lists_the_registered_ones(tmp_path):
    with pytest.raises(UserError, match=r"unknown reader 'coco'; registered: \['csv', 'folder'"):
        import_dataset("coco", tmp_path, tmp_path / "ds")
