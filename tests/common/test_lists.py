"""List files and classes.txt: every bad case gives a clear error naming file and line."""

from __future__ import annotations

import numpy as np
import pytest

from common.contract import InputContract
from common.errors import UserError
from common.images import UnreadableImageError, load_samples
from common.lists import ListFileError, Sample, dataset_for_list, load_dataset, read_list, read_split

GRAY = InputContract(color_mode="L", height=4, width=6, interpolation="bilinear", mean=(0.5,), std=(0.5,))


def problems_of(excinfo: pytest.ExceptionInfo[ListFileError]) -> list[str]:
    return excinfo.value.problems


def test_reads_samples_skipping_blank_lines_and_comments(write_dataset):
    root = write_dataset(lists={"train": "# header\n\nraw/0.png 0\n   \nraw/1.png   2\n# raw/2.png 1\n"})
    samples = read_split(load_dataset(root), "train")
    assert [(s.path, s.label, s.line) for s in samples] == [("raw/0.png", 0, 3), ("raw/1.png", 2, 5)]
    assert samples[0].source.endswith("tiny/lists/train.txt")


def test_path_with_spaces_and_redundant_parts_is_normalised(write_dataset):
    root = write_dataset(images={"raw/my cat.png": np.zeros((4, 6), np.uint8)},
                         lists={"train": "raw/./my cat.png 0\n"})
    assert read_split(load_dataset(root), "train")[0].path == "raw/my cat.png"


def test_missing_image(write_dataset):
    root = write_dataset(lists={"train": "raw/0.png 0\nraw/nope.png 1\n"})
    with pytest.raises(ListFileError) as excinfo:
        read_split(load_dataset(root), "train")
    assert problems_of(excinfo) == [f"{root}/lists/train.txt:2: image not found: {root}/raw/nope.png"]


@pytest.mark.parametrize("label", ["cat", "-1", "+1", "1_0", "1.0", "\u0661", "\uff11", "\u00b2"])
def test_a_label_is_ascii_digits(write_dataset, label):
    # int() takes signs, underscores, Arabic-Indic and full-width digits; not 'cat', '1.0' or '\u00b2'
    root = write_dataset(lists={"train": f"raw/0.png 0\nraw/1.png {label}\n"})
    with pytest.raises(ListFileError) as excinfo:
        read_split(load_dataset(root), "train")
    assert problems_of(excinfo) == [f"{root}/lists/train.txt:2: label {label!r} is not a class index (the 0-based "
                                    "line number of the class in classes.txt, in ASCII digits 0-9)"]


@pytest.mark.parametrize("label", ["3", "17", "003"])
def test_label_outside_classes(write_dataset, label):
    root = write_dataset(lists={"train": f"raw/0.png 0\nraw/1.png {label}\n"})
    with pytest.raises(ListFileError) as excinfo:
        read_split(load_dataset(root), "train")
    assert problems_of(excinfo) == [
        f"{root}/lists/train.txt:2: label {int(label)} is outside 0..2 (classes.txt has 3 classes)"
    ]


def test_duplicate_path_names_the_first_line(write_dataset):
    root = write_dataset(lists={"train": "raw/0.png 0\nraw/1.png 1\nraw/./0.png 0\n"})
    with pytest.raises(ListFileError) as excinfo:
        read_split(load_dataset(root), "train")
    assert problems_of(excinfo) == [f"{root}/lists/train.txt:3: 'raw/0.png' is listed twice (first on line 1)"]


@pytest.mark.parametrize("path", ["../outside.png", "raw/../../outside.png", "/etc/passwd", "C:/x.png"])
def test_path_escaping_the_data_set_folder(write_dataset, path):
    root = write_dataset(lists={"train": f"{path} 0\n"})
    with pytest.raises(ListFileError, match=r"train\.txt:1: path .* leaves the data set folder"):
        read_split(load_dataset(root), "train")


def test_backslash_paths_are_refused_with_advice(write_dataset):
    root = write_dataset(lists={"train": "raw\\0.png 0\n"})
    with pytest.raises(ListFileError, match=r"train\.txt:1: .* uses '\\'; separate folders with '/'"):
        read_split(load_dataset(root), "train")


@pytest.mark.parametrize("content", ["", "# only a comment\n\n"])
def test_empty_split(write_dataset, content):
    root = write_dataset(lists={"val": content})
    with pytest.raises(ListFileError) as excinfo:
        read_split(load_dataset(root), "val")
    assert problems_of(excinfo) == [f"{root}/lists/val.txt: no samples (the file is empty or holds only comments)"]


def test_malformed_line(write_dataset):
    root = write_dataset(lists={"train": "raw/0.png 0\nraw/1.png\n"})
    with pytest.raises(ListFileError) as excinfo:
        read_split(load_dataset(root), "train")
    assert problems_of(excinfo) == [f"{root}/lists/train.txt:2: expected '<image path> <label>', got 'raw/1.png'"]


def test_all_problems_are_reported_at_once(write_dataset):
    root = write_dataset(lists={"train": "raw/0.png x\nraw/1.png 9\nraw/2.png 1\nmissing.png 0\n"})
    with pytest.raises(ListFileError) as excinfo:
        read_split(load_dataset(root), "train")
    lines = [p.split(": ")[0].rsplit(":", 1)[1] for p in problems_of(excinfo)]
    assert lines == ["1", "2", "4"]
    assert str(excinfo.value).startswith("3 problems in the data set files:")


def test_long_error_messages_are_summarised(write_dataset):
    root = write_dataset(lists={"train": "".join(f"raw/{i}.png x\n" for i in range(25))})
    with pytest.raises(ListFileError) as excinfo:
        read_split(load_dataset(root), "train")
    assert len(problems_of(excinfo)) == 25
    assert "... and 5 more problem(s)" in str(excinfo.value)


def test_missing_split_lists_the_available_ones(write_dataset):
    root = write_dataset(lists={"train": "raw/0.png 0\n", "val": "raw/1.png 1\n"})
    with pytest.raises(UserError, match=r"no list file for split 'test'; available: \['train', 'val'\]"):
        read_split(load_dataset(root), "test")


def test_non_utf8_list_file(write_dataset):
    root = write_dataset()
    (root / "lists" / "train.txt").write_bytes(b"raw/\xff.png 0\n")
    with pytest.raises(UserError, match=r"train\.txt: not UTF-8 text"):
        read_split(load_dataset(root), "train")


def test_unreadable_image_is_an_error_naming_list_and_line(write_dataset):
    root = write_dataset(lists={"train": "raw/0.png 0\nraw/broken.png 1\n"})
    (root / "raw" / "broken.png").write_bytes(b"not a png at all")
    dataset = load_dataset(root)
    samples = read_split(dataset, "train")
    with pytest.raises(UnreadableImageError, match=r"train\.txt:2: cannot decode raw/broken\.png \(cannot identify image file .*\); fix or remove the line"):
        load_samples(dataset, samples, GRAY)


def test_unreadable_image_can_be_skipped_with_a_warning(write_dataset, caplog):
    root = write_dataset(lists={"train": "raw/0.png 0\nraw/broken.png 1\nraw/2.png 2\n"})
    (root / "raw" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    dataset = load_dataset(root)
    images, labels, kept = load_samples(dataset, read_split(dataset, "train"), GRAY, on_unreadable="skip")
    assert images.shape == (2, 1, 4, 6) and labels.tolist() == [0, 2]
    assert [s.line for s in kept] == [1, 3]
    assert "skipped an unreadable image: " in caplog.text and "train.txt:2: cannot decode raw/broken.png" in caplog.text


def test_every_image_unreadable_is_an_error_even_when_skipping(write_dataset):
    root = write_dataset(lists={"train": "raw/broken.png 1\n"})
    (root / "raw" / "broken.png").write_bytes(b"junk")
    dataset = load_dataset(root)
    with pytest.raises(UnreadableImageError, match="none of the 1 images could be decoded"):
        load_samples(dataset, read_split(dataset, "train"), GRAY, on_unreadable="skip")


def test_unknown_on_unreadable_setting(write_dataset):
    dataset = load_dataset(write_dataset())
    with pytest.raises(UserError, match=r"on_unreadable: 'ignore' is not one of \['error', 'skip'\]"):
        load_samples(dataset, [Sample("raw/0.png", 0, "x", 1)], GRAY, on_unreadable="ignore")


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ("cat\n\ndog\n", r"classes\.txt:2: blank class name"),
        ("cat\ndog\ncat\n", r"classes\.txt:3: class 'cat' repeats line 1"),
        ("\n\n", r"classes\.txt: no class names"),
    ],
)
def test_bad_classes_file(write_dataset, classes, message):
    root = write_dataset(classes=classes)
    with pytest.raises(ListFileError, match=message):
        load_dataset(root)


@pytest.mark.parametrize("first_line", ["# a comment", "raw/0.png 0"])
def test_a_byte_order_mark_is_stripped_from_classes_and_lists(write_dataset, first_line):
    bom = "\ufeff"
    root = write_dataset(classes=f"{bom}cat\ndog\nbird\n", lists={"train": f"{bom}{first_line}\nraw/1.png 1\n"})
    dataset = load_dataset(root)
    assert dataset.class_names == ("cat", "dog", "bird")
    assert [(s.path, s.label) for s in read_split(dataset, "train")][-1] == ("raw/1.png", 1)
    assert len(read_split(dataset, "train")) == (2 if first_line.startswith("raw") else 1)


def test_trailing_blank_lines_in_classes_are_fine(write_dataset):
    assert load_dataset(write_dataset(classes="a\nb\n\n\n")).class_names == ("a", "b")


def test_missing_data_set_folder_and_classes_file(tmp_path):
    with pytest.raises(UserError, match="data set folder not found .*prepare-data"):
        load_dataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"classes\.txt: missing"):
        load_dataset(tmp_path / "empty")


def test_dataset_for_list_finds_the_folder_above_lists(write_dataset, tmp_path):
    root = write_dataset(lists={"test": "raw/0.png 0\n"})
    dataset = dataset_for_list(root / "lists" / "test.txt")
    assert dataset.root == root and dataset.class_names == ("cat", "dog", "bird")
    stray = tmp_path / "stray.txt"
    stray.write_text("raw/0.png 0\n")
    with pytest.raises(UserError, match=r"must live in <data set>/lists/"):
        dataset_for_list(stray)
    with pytest.raises(UserError, match="list file not found"):
        dataset_for_list(root / "lists" / "nope.txt")
    assert read_list(dataset, root / "lists" / "test.txt")[0].label == 0


def test_name_problem_finds_every_control_character_and_line_break_unicode_knows():
    import sys
    import unicodedata

    from common.lists import LINE_BREAKS, name_problem

    for code in range(sys.maxunicode + 1):
        c = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue  # surrogates are no characters of a name
        expected = ("a line break" if c in LINE_BREAKS else "a control character"
                    if unicodedata.category(c) == "Cc" else None)
        assert name_problem(f"a{c}b") in ((expected,) if expected else (None, "a backslash")), hex(code)
    assert "x\u2028y".splitlines() == ["x", "y"] and name_problem("x\u2028y") == "a line break"
