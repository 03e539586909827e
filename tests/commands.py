"""The project's commands as users run them: the Pipfile's ``[scripts]``, in a subprocess or in this process.

Tests run a command through the very line the Pipfile gives ``pipenv run <command>``,
so a test of ``prepare-data`` exercises ``python -m datatools prepare`` exactly.
"""

from __future__ import annotations

import importlib
import shlex
import sys
import tomllib
from collections.abc import Callable, Sequence
from functools import cache

from common.paths import PROJECT_ROOT


@cache
def scripts() -> dict[str, list[str]]:
    """``pipenv run <name>`` -> its command line from the Pipfile (``python`` is this interpreter)."""
    table = tomllib.loads((PROJECT_ROOT / "Pipfile").read_text())["scripts"]
    return {name: [sys.executable if word == "python" else word for word in shlex.split(line)]
            for name, line in table.items()}


def command_line(name: str, *args: str) -> list[str]:
    """The full command line of ``pipenv run <name> <args>``."""
    return [*scripts()[name], *args]


def command_main(name: str) -> Callable[[Sequence[str]], int | None]:
    """The entry point of ``pipenv run <name>`` as a function of its arguments, for ``run_main`` in this process."""
    line = scripts()[name]
    if line[1:2] != ["-m"]:
        raise ValueError(f"pipenv run {name} is not a python -m command: {line}")
    module, prefix = line[2], line[3:]
    main = importlib.import_module(f"{module}.__main__" if module != "pytest" else module).main
    return lambda argv: main([*prefix, *argv])
