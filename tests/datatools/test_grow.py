"""prepare-data --from-<format> NEW --add-to <ds>: new images in, a new list version; existing images never move,
test frozen unless --into-test, copies not added twice, near-duplicates reported. Torch-free."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.cli import run_main
from common.errors import UserError
from common.files import read_text
from common.list_versions import read_history
from common.lists import load_dataset, read_prepare_record, read_split
from datatools.grow import AddSettings, add_to_dataset
from tests.commands import command_main
from tests.datatools.small_sets import jpeg_copy, pattern, write_set


def new_folder(root: Path, per_class: int = 8, classes: tuple[str, ...] = ("bird", "cat", "dog"), start: int = 1000
               ) -> Path:
    """A folder of class folders with ``per_class`` new, distinct images each."""
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for number in range(per_class):
            Image.fromarray(pattern(start + 100 * label + number)).save(root / name / f"{number}.png")
    return root


def lines(root: Path, split: str) -> list[str]:
    return read_text(root / "lists" / f"{split}.txt").splitlines()


def test_new_images_join_train_and_val_and_the_old_lines_stay_as_they_were(tmp_path):
    root = write_set(tmp_path / "ds")
    before = {split: lines(root, split) for split in ("train", "val", "test", "dev")}
    source = new_folder(tmp_path / "new")
    shutil.copy(root / "raw/cat/3.png", source / "cat" / "old.png")  # already in train
    jpeg_copy(root / "raw/dog/8.png", source / "dog" / "near.jpg")  # looks like a test image
    (source / "bird" / "0.png").rename(source / "bird" / "taken.png")
    Image.fromarray(pattern(7)).save(root / "raw/bird/taken.png")  # a file of another picture at that name
    result = add_to_dataset("folder", source, root)
    assert result.added == {"train": 22, "val": 3} and sum(result.added.values()) == 25
    assert [(e.path, e.reason) for e in result.already_there] == [("cat/old.png",
                                                                   "already in the data set as raw/cat/3.png")]
    assert len(result.near_duplicates) == 1 and result.near_duplicates[0].startswith("dog/near.jpg looks like "
                                                                                     "raw/dog/8.png")
    after = {split: lines(root, split) for split in ("train", "val", "test", "dev")}
    assert after["test"] == before["test"] and after["dev"] == before["dev"]  # test frozen, dev as it was
    for split in ("train", "val"):
        assert after[split][:len(before[split])] == before[split]  # existing assignments never move
    added = [line.rsplit(maxsplit=1) for line in after["train"][len(before["train"]):] + after["val"][2 * 3 + 1:]]
    assert {path for path, _ in added} >= {"raw/bird/taken-2.png", "raw/dog/near.jpg"}
    assert all(load_dataset(root).class_names[int(label)] == path.split("/")[1] for path, label in added)
    assert Image.open(root / "raw/bird/taken.png").tobytes() == Image.fromarray(pattern(7)).tobytes()  # not replaced
    change = result.change
    assert change.kind == "add" and {s: e["version"] for s, e in change.lists.items()} == {"train": 2, "val": 2}
    assert change.counts == {"added_to_train": 22, "added_to_val": 3} and len(change.images) == 25
    assert change.images[0]["why"].startswith("added from ")
    assert [c.kind for c in read_history(root).changes] == ["created", "add"]


def test_the_seeded_rule_is_stratified_and_into_test_opens_the_test_split(tmp_path):
    root = write_set(tmp_path / "ds")
    source = new_folder(tmp_path / "new", per_class=10)
    result = add_to_dataset("folder", source, root, settings=AddSettings(seed=3, into_test=True))
    assert result.added == {"train": 21, "test": 6, "val": 3}
    test = read_split(load_dataset(root), "test")[6:]
    assert np.bincount([s.label for s in test]).tolist() == [2, 2, 2]  # stratified by class
    again = write_set(tmp_path / "again")
    add_to_dataset("folder", source, again, settings=AddSettings(seed=3, into_test=True))
    assert lines(again, "test") == lines(root, "test")  # seeded


def test_a_source_that_puts_images_in_the_frozen_test_split_or_moves_one_is_refused(tmp_path):
    root = write_set(tmp_path / "ds")
    new_folder(tmp_path / "new", per_class=1)
    shutil.copy(root / "raw/cat/0.png", tmp_path / "old.png")  # in train already
    manifest = tmp_path / "new.csv"
    manifest.write_text("file,label,split\nnew/bird/0.png,bird,test\nold.png,cat,val\nnew/dog/0.png,dog,train\n")
    with pytest.raises(UserError) as caught:
        add_to_dataset("csv", manifest, root)
    first, second = caught.value.problems
    assert first.startswith(f"{manifest}:2: ") and "in test, which is frozen" in first
    assert second.startswith(f"{manifest}:3: ") and second.endswith(
        "old.png is already in the data set as raw/cat/0.png (in train); adding it to val would move it")
    assert [c.kind for c in read_history(root).changes] == ["created"]
    assert result_of_into_test(root, manifest.parent / "new.csv", "file,label,split\nnew/bird/0.png,bird,test\n")


def result_of_into_test(root: Path, manifest: Path, text: str) -> bool:
    manifest.write_text(text)
    return add_to_dataset("csv", manifest, root, settings=AddSettings(into_test=True)).added == {"test": 1}


def test_sources_that_hold_the_data_set_or_other_classes_are_refused(tmp_path):
    root = write_set(tmp_path / "data" / "ds")
    with pytest.raises(UserError, match="it contains the data set .* itself"):
        add_to_dataset("folder", tmp_path / "data", root)
    with pytest.raises(UserError, match="is inside the data set"):
        add_to_dataset("folder", root / "raw", root)
    other = new_folder(tmp_path / "new", per_class=2, classes=("bird", "fish"))
    with pytest.raises(UserError, match=r"class\(es\) \['fish'\] are not in .*classes.txt"):
        add_to_dataset("folder", other, root)
    listing = tmp_path / "inside.txt"
    listing.write_text(f"{root / 'raw/cat/0.png'} 1\n")
    with pytest.raises(UserError, match=r"inside.txt:1: .*is already inside the data set folder"):
        add_to_dataset("list", listing, root)
    assert [c.kind for c in read_history(root).changes] == ["created"]


def test_a_labelled_to_label_list_is_a_valid_input(tmp_path):
    root = write_set(tmp_path / "ds")
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for number in range(3):
        Image.fromarray(pattern(5000 + number)).save(folder / f"img {number}.png")
    listing = tmp_path / "to_label.txt"
    listing.write_text("# images to label, most uncertain first; <absolute path> <class index>\n"
                       f"{folder / 'img 0.png'} 2\n{folder / 'img 1.png'} 0\n\nunlabelled/img 2.png 1\n")
    result = add_to_dataset("list", listing, root)
    assert sum(result.added.values()) == 3
    added = {line.rsplit(maxsplit=1)[0]: int(line.rsplit(maxsplit=1)[1]) for split in ("train", "val")
             for line in lines(root, split) if "unlabelled" in line}
    assert added == {"raw/unlabelled/img 0.png": 2, "raw/unlabelled/img 1.png": 0, "raw/unlabelled/img 2.png": 1}
    listing.write_text(f"{folder / 'img 0.png'} 3\n{folder / 'missing.png'} 0\nno-label.png\n{folder / 'img 0.png'} 1\n")
    with pytest.raises(UserError) as caught:
        add_to_dataset("list", listing, root)
    assert caught.value.problems == [
        f"{listing}:1: label '3' is not a class index 0..2 (the line of the class in the data set's classes.txt, "
        "from 0)",
        f"{listing}:2: image not found: {folder / 'missing.png'}",
        f"{listing}:3: expected '<image path> <class index>', got 'no-label.png'",
        f"{listing}:4: '{folder / 'img 0.png'}' is listed twice (first on line 1)"]


def test_symlinked_additions_are_recorded_where_thumbnails_may_read_them(tmp_path):
    from common.lists import PrepareRecord, linked_sources, resolve_image, write_prepare_record

    root = write_set(tmp_path / "ds")
    write_prepare_record(root, PrepareRecord(source="the test", seed=0))
    source = new_folder(tmp_path / "new", per_class=2)
    add_to_dataset("folder", source, root, link="symlink")
    (addition,) = read_prepare_record(root).additions
    assert addition["link"] == "symlink" and addition["added"] == 6 and addition["change"] == 2
    assert linked_sources(root) == [source.resolve()]
    assert resolve_image(root, "raw/cat/1-2.png", linked_sources(root)) == (source / "cat" / "1.png").resolve()  # 1.png was taken


def test_the_command_line_adds_and_refuses_mixed_options(tmp_path, capsys):
    root = write_set(tmp_path / "ds")
    source = new_folder(tmp_path / "new", per_class=2)
    main = command_main("prepare-data")
    assert run_main(main, ["--from-folder", str(source), "--add-to", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{root}: added 5 to train, 1 to val; lists now train v2, val v2." in out
    assert run_main(main, ["--from-folder", str(source), "--add-to", str(root)]) == 0
    assert "added nothing; lists now unchanged" in capsys.readouterr().out
    with pytest.raises(SystemExit) as caught:
        main(["--from-folder", str(source), "--into-test", "--name", "x"])
    assert caught.value.code == 2 and "--into-test applies with --add-to" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--from-folder", str(source), "--add-to", str(root), "--name", "x"])
    assert "--name, --out, --force and --dev-per-class do not apply" in capsys.readouterr().err
    assert run_main(main, ["--from-list", str(tmp_path / "x.txt"), "--name", "x"]) == 2
    assert "use it with --add-to <data set>" in capsys.readouterr().err


def test_prepare_data_add_to_while_another_process_holds_the_lists_copies_nothing(tmp_path):
    from common.list_versions import lists_lock

    root = write_set(tmp_path / "ds")
    source = new_folder(tmp_path / "new")
    raw_before = sorted(p.relative_to(root).as_posix() for p in (root / "raw").rglob("*"))
    with lists_lock(root):  # another writer
        with pytest.raises(UserError, match=r"the lists of .*ds.* in use by pid"):
            add_to_dataset("folder", source, root)
    assert sorted(p.relative_to(root).as_posix() for p in (root / "raw").rglob("*")) == raw_before
    assert add_to_dataset("folder", source, root).added  # once free, the same add goes through
