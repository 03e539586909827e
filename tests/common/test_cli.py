"""Command lines as users type them: key=value overrides anywhere, options keep their values; errors without tracebacks."""

from __future__ import annotations

import errno
import os

import pytest

from common.cli import command_parser, parse_key_values, run_main
from common.errors import UserError
from common.files import write_json


def parser():
    made = command_parser("train", "test", overrides_help="overrides")
    made.add_argument("--name")
    made.add_argument("--config")
    made.add_argument("--dev", action="store_true")
    made.add_argument("--allow-change", nargs="+", default=[])
    made.add_argument("--pair", nargs=2)
    made.add_argument("--maybe", nargs="?", const="yes")
    return made


@pytest.mark.parametrize(("argv", "overrides", "options"), [
    (["network=x", "--dev", "epochs=1"], ["network=x", "epochs=1"], {"dev": True}),
    (["--dev", "epochs=1", "--name", "n", "optim.lr=3e-4"], ["epochs=1", "optim.lr=3e-4"], {"name": "n"}),
    (["--allow-change", "epochs", "batch_size", "epochs=80"], ["epochs=80"],
     {"allow_change": ["epochs", "batch_size"]}),
    (["epochs=80", "--allow-change", "epochs", "--dev", "seed=2"], ["epochs=80", "seed=2"],
     {"allow_change": ["epochs"], "dev": True}),
    (["--name", "lr=3", "a.b=1"], ["a.b=1"], {"name": "lr=3"}),  # an option's value stays its value
    (["--name=x=y", "k=v"], ["k=v"], {"name": "x=y"}),
    (["--conf", "c.yaml", "k=v"], ["k=v"], {"config": "c.yaml"}),  # abbreviated options still take their value
    (["--pair", "a=1", "b=2", "c=3"], ["c=3"], {"pair": ["a=1", "b=2"]}),
    (["--maybe", "k=v"], ["k=v"], {"maybe": "yes"}),
    (["data.dataset=/data/my set", "--", "z=1"], ["data.dataset=/data/my set", "z=1"], {}),
])
def test_overrides_anywhere_on_the_line(argv, overrides, options):
    args = parser().parse_args(argv)
    assert args.overrides == overrides
    for key, value in options.items():
        assert getattr(args, key) == value


def test_unknown_options_and_stray_words_are_still_refused(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["epochs=1", "--nope"])
    assert "unrecognized arguments: --nope" in capsys.readouterr().err
    assert parser().parse_args(["word", "epochs=1"]).overrides == ["epochs=1", "word"]  # the config refuses 'word'


def test_a_command_without_overrides_is_plain_argparse(capsys):
    plain = command_parser("evaluate", "test")
    with pytest.raises(SystemExit):
        plain.parse_args(["epochs=1"])
    assert "unrecognized arguments: epochs=1" in capsys.readouterr().err


def test_key_values_are_yaml():
    assert parse_key_values(["channels=[16, 32]", "dropout=0.2", "name=resnet18", "flag=true"], "--params") == {
        "channels": [16, 32], "dropout": 0.2, "name": "resnet18", "flag": True}
    for bad, message in ((["dropout"], "is not key=value"), (["a=1", "a=2"], "given twice"),
                         (["a=[1,"], "not valid YAML")):
        with pytest.raises(UserError, match=message):
            parse_key_values(bad, "--params")


@pytest.mark.parametrize(("code", "reason"), [
    (errno.ENOSPC, "No space left on device"),
    (errno.EDQUOT, "Disk quota exceeded"),
    (errno.EFBIG, "File too large"),
    (errno.EACCES, "Permission denied"),
    (errno.EPERM, "Operation not permitted"),
    (errno.EROFS, "Read-only file system"),
])
def test_disk_and_permission_errors_are_one_line_naming_the_path(capsys, code, reason):
    def main(argv):
        raise OSError(code, os.strerror(code), "output/eval/x/metrics.json")

    assert run_main(main, []) == 2
    assert capsys.readouterr().err == f"error: output/eval/x/metrics.json: {reason}\n"


def test_other_os_errors_are_bugs_and_keep_their_traceback():
    def main(argv):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "x")

    with pytest.raises(FileNotFoundError):
        run_main(main, [])


def test_a_failed_atomic_write_names_its_file_and_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "kept.json").write_text("old")

    def full_disk(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a real write or fsync: no file name

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError) as excinfo:
        write_json(tmp_path / "kept.json", {"new": 1})
    assert excinfo.value.filename == str(tmp_path / "kept.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"]
    assert (tmp_path / "kept.json").read_text() == "old"
