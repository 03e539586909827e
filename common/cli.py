"""The command lines: one pattern for every ``pipenv run`` command.

Every command is ``python -m <package> [<word>]``: the package's ``__main__.py`` is its
only command-line code. It lists the package's commands (:class:`Command`), each a
function that parses its own arguments (a parser from :func:`command_parser`) and
calls one importable function that does the work; :func:`dispatch` picks the command
by its first word, and :func:`run_main` turns user mistakes into one line and exit
status 2. Nothing below ``__main__.py`` parses ``sys.argv``.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from common.errors import UserError
from common.limits import MAX_NAME_BYTES, os_limit

T = TypeVar("T")

DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS,
                         errno.ENAMETOOLONG})
"""``OSError`` numbers that are the user's to fix (a full disk or quota, a file size limit, no permission, a
read-only file system, a file name too long): reported as ``error: <path>: <reason>``, not as a crash."""

OVERRIDE = re.compile(r"^[A-Za-z_][\w.\[\]-]*=")
"""A ``key=value`` config override: a dotted key (letters, digits, ``_``, ``.``, ``-``, ``[]``), then ``=``."""


@dataclass(frozen=True)
class Command:
    """One ``pipenv run`` command of a package.

    Attributes:
        word: The first argument that selects it (``runs`` in ``python -m train runs``);
            None for the package's default command (``python -m train``).
        run: Parses the rest of the command line and does the work; returns an exit status or None.
        help: One line for the package's list of commands.
    """

    word: str | None
    run: Callable[[Sequence[str]], int | None]
    help: str = ""


def _os_limit_or_raise(exc: BaseException) -> int:
    """An operating-system limit (:func:`common.limits.os_limit`) as one line and exit status 1; else raise ``exc``."""
    said = os_limit(exc)
    if said is None:
        raise exc
    print(f"error: {said}", file=sys.stderr)
    return 1


def dispatch(argv: Sequence[str], commands: Sequence[Command], package: str) -> int | None:
    """Run the command the first argument names, or the package's default command.

    Raises:
        UserError: When there is no default command and the first argument names none,
            listing the commands.
    """
    argv = list(argv)
    by_word = {command.word: command for command in commands}
    if argv and argv[0] in by_word:
        return by_word[argv[0]].run(argv[1:])
    if None in by_word:
        return by_word[None].run(argv)
    listed = "\n".join(f"  {c.word:<10} {c.help}" for c in commands)
    raise UserError(f"python -m {package}: name a command first:\n{listed}")


def run_main(main: Callable[[Sequence[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Run an entry point, turning user errors into a message and exit status 2.

    A full disk, a quota, a file size limit, missing permission or a read-only file
    system (:data:`DISK_ERRORS`) is a user error too: ``error: <path>: <reason>``.
    Commands write through :func:`common.files.atomic_write` and
    :func:`common.staging.staged`, so nothing half-written is left behind.

    Args:
        main: The function that parses ``argv`` and does the work; returns an exit
            status or None for success.
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The process exit status.
    """
    try:
        return main(list(sys.argv[1:] if argv is None else argv)) or 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            return _os_limit_or_raise(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or os.strerror(exc.errno)}", file=sys.stderr)
        return 2
    except (RuntimeError, MemoryError) as exc:
        return _os_limit_or_raise(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


class CommandParser(argparse.ArgumentParser):
    """The parser of one ``pipenv run <command>``; optionally takes ``key=value`` overrides anywhere.

    With ``overrides_help``, the parser has a positional ``overrides`` (shown as
    ``key=value``) and accepts overrides before, between and after the options,
    as users type them: ``train network=x --dev epochs=1``. A token is an override
    when it looks like ``key=value`` and is not the value of an option: ``--name
    a=b`` keeps ``a=b`` as the name, and an option taking several values
    (``--allow-change epochs batch_size``) stops at the first override.

    Args:
        overrides_help: Help text of the overrides; None for a command without them.
        **kwargs: Passed to :class:`argparse.ArgumentParser`.
    """

    def __init__(self, overrides_help: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.takes_overrides = overrides_help is not None
        if self.takes_overrides:
            self.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        """Parse the options; the ``key=value`` overrides, wherever they stand, land in ``overrides`` in order."""
        if not self.takes_overrides:
            return super().parse_known_args(args, namespace)
        rest, overrides = split_overrides(self, list(sys.argv[1:] if args is None else args))
        parsed, extras = super().parse_known_args(rest, namespace)
        parsed.overrides = [*overrides, *parsed.overrides]  # leftovers are not overrides; the config says so
        return parsed, extras


def command_parser(command: str, description: str, epilog: str = "",
                   overrides_help: str | None = None) -> CommandParser:
    """The argument parser of ``pipenv run <command>``; the epilog (examples) keeps its line breaks.

    Args:
        command: The command's name, as in the Pipfile's scripts.
        description: What the command does, for ``--help``.
        epilog: Examples, shown after the options.
        overrides_help: Give the command ``key=value`` overrides, accepted anywhere
            on the line (see :class:`CommandParser`), with this help text.
    """
    return CommandParser(overrides_help, prog=f"pipenv run {command}", description=description,
                         epilog=epilog or None, formatter_class=argparse.RawDescriptionHelpFormatter)


def parse_key_values(items: Sequence[str], option: str) -> dict[str, Any]:
    """``["channels=[32,64]", "dropout=0.2"]`` -> ``{"channels": [32, 64], "dropout": 0.2}``; values are YAML.

    Args:
        items: ``key=value`` strings.
        option: The option they came from, named in errors.

    Raises:
        UserError: For an item without ``=``, an empty or repeated key, or a value that is not YAML
            (or too large once its aliases are expanded: :func:`common.files.parse_yaml`).
    """
    from common.files import parse_yaml

    parsed: dict[str, Any] = {}
    for item in items:
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise UserError(f"{option}: {item!r} is not key=value (e.g. dropout=0.2)")
        if key in parsed:
            raise UserError(f"{option}: {key!r} is given twice")
        shown = item if len(item) <= 80 else f"{item[:77]}..."
        parsed[key] = parse_yaml(text, f"{option}: {shown!r}", "the value is not valid YAML") if text.strip() else None
    return parsed


def split_overrides(parser: argparse.ArgumentParser, tokens: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate ``key=value`` overrides from options and their values.

    Args:
        parser: The parser whose options decide which tokens are option values.
        tokens: The command line, without the program name.

    Returns:
        ``(rest, overrides)``: the tokens for argparse, and the overrides in order.
        Everything after ``--`` is left to argparse.
    """
    rest: list[str] = []
    overrides: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--":
            rest += tokens[index - 1:]
            break
        if OVERRIDE.match(token):
            overrides.append(token)
            continue
        rest.append(token)
        nargs = _option_nargs(parser, token)
        if nargs is None:
            continue
        if isinstance(nargs, int):
            rest += tokens[index:index + nargs]  # fixed-count values are values, whatever they look like
            index += nargs
            continue
        limit = 1 if nargs == "?" else len(tokens)
        while limit and index < len(tokens) and not tokens[index].startswith("-") and not OVERRIDE.match(tokens[index]):
            rest.append(tokens[index])
            index += 1
            limit -= 1
    return rest, overrides


def _option_nargs(parser: argparse.ArgumentParser, token: str) -> int | str | None:
    """How many of the following tokens option ``token`` takes: a count, ``?``/``*``/``+``, or None (not an option)."""
    if not token.startswith("-") or token == "-" or "=" in token:
        return None  # a value, or --option=value carrying its own value
    full = _full_option(parser, token)
    action = parser._option_string_actions[full] if full else None
    if action is None:
        return None
    return 1 if action.nargs is None else action.nargs  # flags (store_true, count, help) have nargs 0


def spelled_out(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``argv`` with every option written in full (``--sub slurm`` -> ``--submit slurm``), as argparse read it.

    A command line passed on to a job must name its options exactly, so that the job can tell which of them were
    the submission's own.
    """
    written = []
    for token in argv:
        name, equals, value = token.partition("=")
        full = _full_option(parser, name) if token.startswith("--") else None
        written.append(full + equals + value if full else token)
    return written


def _full_option(parser: argparse.ArgumentParser, token: str) -> str | None:
    """The option string ``token`` names, as argparse reads it (an exact one, or an unambiguous ``--`` prefix)."""
    actions = parser._option_string_actions  # argparse's own table of option strings
    if token in actions:
        return token
    if not (token.startswith("--") and parser.allow_abbrev):
        return None
    matches = [option for option in actions if option.startswith(token)]
    return min(matches, key=len) if len({actions[option] for option in matches}) == 1 else None


def options_from(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """An options dataclass from parsed arguments: each field takes the argument of its name, when there is one.

    The one way a command turns its arguments into the options its function takes,
    instead of copying them field by field: a field named like an option (``--batch-size``
    -> ``batch_size``) takes its value; a list given to a tuple field becomes a tuple;
    ``given`` sets the rest (values derived from other options, e.g. ``progress=not
    args.no_progress``). Fields with neither keep their defaults.

    Args:
        cls: A dataclass.
        args: The parsed command line.
        **given: Field values that do not come from an option of the same name.
    """
    values = {}
    for spec in fields(cls):
        if spec.name in given or not hasattr(args, spec.name):
            continue
        value = getattr(args, spec.name)
        values[spec.name] = tuple(value) if isinstance(value, list) and isinstance(spec.default, tuple) else value
    return cls(**values, **given)


def check_plain_name(name: str | None, option: str = "--name") -> None:
    """Refuse a name for an output file or folder that is not a plain name (None: the default name).

    Raises:
        UserError: For an empty name, one with a ``/`` or ``\\`` or starting with ``.``, a control
            character, or longer than :data:`common.limits.MAX_NAME_BYTES` bytes (UTF-8).
    """
    if name is None:
        return
    if not name or "/" in name or "\\" in name or name.startswith(".") or not name.isprintable():
        shown = name if len(name) <= 80 else f"{name[:77]}..."
        raise UserError(f"{option} {shown!r}: a plain name, without '/', '\\', a leading '.' or control characters")
    check_name_length(name, option)


def check_name_length(name: str, option: str, added: int = 0) -> None:
    """Refuse a file or folder name longer than :data:`common.limits.MAX_NAME_BYTES` bytes (UTF-8).

    Args:
        name: The name as given.
        option: The option that gave it, for the message.
        added: Bytes the command adds to the name (a run folder's ``-<date>-<time>``).

    Raises:
        UserError: Naming the option, the length and the limit.
    """
    size, limit = len(name.encode("utf-8")), MAX_NAME_BYTES - added
    if size > limit:
        raise UserError(f"{option} {name[:40]!r}...: {size} bytes long; at most {limit} here (staging folders and "
                        "temporary files add to a name, and file systems allow 255)")
