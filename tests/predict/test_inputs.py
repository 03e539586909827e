"""Gathering the images to predict: folders, globs, files, list files, files of paths; order, shards, bad input."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.errors import UserError
from predict.inputs import InputFileError, gather_inputs, inputs_digest


def image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for name in ("b.png", "a.jpg", "deep/er/c.PNG", "deep/d.gif", ".hidden.png", ".cache/e.png"):
        image(root / name)
    (root / "notes.txt").write_text("not an image")
    (root / "deep" / "photo.xmp").write_text("<x/>")
    return root


def test_a_folder_is_walked_recursively_skipping_hidden_entries_and_other_files(photos, caplog):
    caplog.set_level(logging.INFO)
    found = gather_inputs([str(photos)])
    assert found.paths == sorted(str(photos / n) for n in ("a.jpg", "b.png", "deep/d.gif", "deep/er/c.PNG"))
    assert "left out 2 file(s) that are not images by their extension" in caplog.text
    assert found.given == [str(photos)]


def test_globs_files_and_folders_combine_deduplicated_and_sorted(photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = gather_inputs(["photos/**/*.png", "photos/deep", "photos/notes.txt", "photos/b.png"])
    # the glob takes image files (c.PNG comes from the folder: globs are case-sensitive, extensions are not), an
    # explicitly named file is taken whatever its extension, and each file appears once
    assert found.paths == sorted(str(photos / n) for n in ("b.png", "deep/d.gif", "deep/er/c.PNG", "notes.txt"))
    assert found.paths == sorted(found.paths) and len(set(found.paths)) == len(found.paths)


def test_list_files_ignore_labels_and_files_of_paths_take_whole_lines(photos, tmp_path):
    dataset = tmp_path / "ds"
    image(dataset / "raw" / "x y.png")  # a space in the name
    (dataset / "lists").mkdir()
    (dataset / "lists" / "test.txt").write_text("# a comment\nraw/x y.png 3\n\n")
    listing = tmp_path / "todo.txt"
    listing.write_text(f"photos/a.jpg\n{photos / 'deep' / 'd.gif'}\n# done: photos/b.png\n")
    found = gather_inputs([], lists=[dataset / "lists" / "test.txt"], path_files=[listing])
    assert found.paths == sorted([str(dataset / "raw" / "x y.png"), str(photos / "a.jpg"), str(photos / "deep/d.gif")])
    assert found.where(str(photos / "a.jpg")) == f"{photos / 'a.jpg'} (listed at {listing}:1)"


def test_every_missing_entry_of_a_file_of_paths_is_named_with_its_line(tmp_path, photos):
    listing = tmp_path / "todo.txt"
    listing.write_text("photos/a.jpg\nphotos/gone.jpg\n\nphotos/also-gone.png\n")
    with pytest.raises(InputFileError) as excinfo:
        gather_inputs([], path_files=[listing])
    assert excinfo.value.problems == [f"{listing}:2: no such file: {tmp_path / 'photos/gone.jpg'}",
                                      f"{listing}:4: no such file: {tmp_path / 'photos/also-gone.png'}"]


@pytest.mark.parametrize(("setup", "argument", "message"), [
    (lambda t: (t / "empty").mkdir(), "empty", "empty: no image files in this folder or below it"),
    (lambda t: None, "*.nothing", r"\*\.nothing: the glob matches nothing"),
    (lambda t: (t / "t.txt").write_text("x"), "*.txt", r"\*\.txt: the glob matches 1 path\(s\), none of them an image"),
    (lambda t: None, "missing-folder", "missing-folder: no such file or folder"),
    (lambda t: None, None, "name the images to predict"),
])
def test_bad_inputs_are_clear_errors(tmp_path, monkeypatch, setup, argument, message):
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    with pytest.raises(UserError, match=message):
        gather_inputs([argument] if argument else [])


def test_a_directory_loop_is_an_error_naming_the_link(photos):
    os.symlink(photos, photos / "deep" / "back")
    with pytest.raises(UserError, match=r"deep/back: a directory loop: this link leads back to a folder above it"):
        gather_inputs([str(photos)])


def test_links_to_folders_elsewhere_are_followed(photos, tmp_path):
    image(tmp_path / "elsewhere" / "z.png")
    os.symlink(tmp_path / "elsewhere", photos / "linked")
    assert str(photos / "linked" / "z.png") in gather_inputs([str(photos)]).paths


def test_names_that_are_not_utf8_are_left_out_with_a_warning(photos, caplog):
    name = os.path.join(os.fsencode(photos), b"bad-\xff.png")
    with open(name, "wb") as stream:
        stream.write((photos / "b.png").read_bytes())
    found = gather_inputs([str(photos)])
    assert len(found.paths) == 4 and "whose names are not UTF-8" in caplog.text


def test_shards_split_the_sorted_list_deterministically(photos):
    found = gather_inputs([str(photos)])
    shards = [found.shard(i, 3) for i in range(3)]
    assert sorted(p for shard in shards for p in shard) == found.paths
    assert shards[0] == found.paths[0::3] and shards[2] == found.paths[2::3]
    assert found.sha256 == inputs_digest(found.paths) != inputs_digest(found.paths[1:])


@pytest.mark.parametrize("name", ["a.png", "A.PNG", "x/y/a.jpeg", "a..png", "..png", ".png", "a.", "a", "dir.png/file",
                                  "dir/.png", "dir/..a.png", "a.tar.gz", "/abs/p.q/r.webp", "a.png.txt", ".a.b.jpg"])
def test_image_names_are_told_by_the_extension_splitext_finds(name):
    from predict.inputs import _image_extensions, is_image_name

    assert is_image_name(name) == (os.path.splitext(name)[1].lower() in _image_extensions())
