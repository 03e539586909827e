"""The README's quick start works where pip's user bin folder is not on PATH; CI runs it from the README."""

from __future__ import annotations

import re
import shlex

from common.paths import PROJECT_ROOT


def quick_start() -> list[str]:
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text[text.index("\n## Quick start\n"):]
    return [line for line in re.search(r"```bash\n(.*?)```", section, re.S).group(1).splitlines() if line.strip()]


def test_every_command_runs_through_python3_so_path_does_not_matter():
    lines = quick_start()
    commands = [[word for word in shlex.split(part) if not re.match(r"^[A-Z_]+=", word)]  # without VAR=value
                for line in lines for part in line.split("&&")]
    assert {command[0] for command in commands} == {"python3"}, lines
    assert any(c[:3] == ["python3", "-m", "pipenv"] and "sync" in c for c in commands)
    assert "PIPENV_VENV_IN_PROJECT=1" in lines[0]  # the environment lands in .venv/
    assert lines[-1] == "python3 -m pipenv run test"  # the suite, as CI runs it


def test_ci_reads_the_quick_start_from_the_readme_instead_of_a_copy():
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert '"## Quick start"' in ci and "README.md" in ci
    assert not any(line in ci for line in quick_start())
    assert 'grep -vxF -e "$user_bin"' in ci  # pip's user bin folder is taken off PATH
