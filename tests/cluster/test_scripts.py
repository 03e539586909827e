"""docs/clusters.md shows the job scripts ``--submit slurm --dry-run`` writes, not a second copy.

Each ``console`` block of its Slurm sections that runs ``... --dry-run`` is run here (on
any machine: a dry run needs no Slurm), and what it prints, with this checkout's paths
written as the docs write them, must be the ``bash`` block that follows it. The same
generator writes the scripts ``test_slurm.py`` submits to a real cluster.
"""

from __future__ import annotations

import re
import shlex
import sys

import pytest

from common.paths import PROJECT_ROOT
from tests.commands import command_main

DOC = PROJECT_ROOT / "docs" / "clusters.md"
HOME = "/home/you/imagepipe"
"""Where the docs' user keeps the project."""


def examples() -> list[tuple[dict[str, str], list[str], str]]:
    """(environment, ``pipenv run`` words, the script shown) of each dry run in the docs."""
    text = DOC.read_text()
    found = []
    for console, script in re.findall(r"```console\n(.*?)```\s*```bash\n(.*?)```", text, re.S):
        env, words = {}, []
        for line in console.replace("\\\n", " ").splitlines():
            line = line.removeprefix("$ ")
            if line.startswith("export "):
                env.update(item.split("=", 1) for item in shlex.split(line)[1:])
            elif line.startswith("pipenv run "):
                words = shlex.split(line)[2:]
        found.append((env, words, script))
    return found


def test_the_docs_show_every_kind_of_job_script():
    shown = examples()
    assert len(shown) == 4 and all("--dry-run" in words for _, words, _ in shown)
    assert [words[0] for _, words, _ in shown] == ["train", "train", "predict", "sweep"]
    assert "processes-per-node=8" in shown[1][1][-5:] and "--shards" in shown[2][1]


@pytest.mark.parametrize("example", range(4))
def test_each_script_in_the_docs_is_what_the_dry_run_prints(example, monkeypatch, capsys):
    env, words, shown = examples()[example]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert command_main(words[0])(words[1:]) in (0, None)
    printed = capsys.readouterr().out
    printed = printed.replace(sys.executable, f"{HOME}/.venv/bin/python").replace(str(PROJECT_ROOT), HOME)
    assert printed == shown
