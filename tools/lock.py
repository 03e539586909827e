"""Re-lock the Pipfile and keep the lock index-agnostic.

Run it as ``pipenv run lock`` (extra arguments go to ``pipenv lock``). It

1. runs ``pipenv lock``,
2. empties ``_meta.sources`` and drops every package's ``index`` key, so that no
   committed file names a package index and pip's configured index applies on
   every machine, and
3. checks that each package locks to the same version in every category, so the
   training, packaging and evaluation machines run the same code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def strip_sources(lock: dict) -> dict:
    """Return a copy of a Pipfile.lock mapping with no package index named in it.

    Args:
        lock: The parsed Pipfile.lock.

    Returns:
        The same lock with ``_meta.sources`` empty and no ``index`` key on any package.
    """
    out = json.loads(json.dumps(lock))
    out.setdefault("_meta", {})["sources"] = []
    for category, packages in out.items():
        if category == "_meta":
            continue
        for entry in packages.values():
            entry.pop("index", None)
    return out


def version_conflicts(lock: dict) -> list[str]:
    """List the packages that lock to different versions in different categories.

    Args:
        lock: The parsed Pipfile.lock.

    Returns:
        One human-readable line per conflicting package; empty when consistent.
    """
    seen: dict[str, dict[str, str]] = {}
    for category, packages in lock.items():
        if category == "_meta":
            continue
        for name, entry in packages.items():
            seen.setdefault(name, {})[category] = entry.get("version", "<no version>")
    lines = []
    for name, by_category in sorted(seen.items()):
        if len(set(by_category.values())) > 1:
            detail = ", ".join(f"{cat}: {ver}" for cat, ver in sorted(by_category.items()))
            lines.append(f"{name} locks to different versions ({detail})")
    return lines


def pipenv_command() -> list[str]:
    """How to call pipenv from inside ``pipenv run``: the ``pipenv`` script when it is on PATH, else
    ``python -m pipenv`` with the interpreter the project's virtual environment was made from (pip's
    user bin folder is not on PATH on a fresh machine, and the environment itself holds no pipenv)."""
    script = shutil.which("pipenv")
    return [script] if script else [getattr(sys, "_base_executable", sys.executable), "-m", "pipenv"]


def main(argv: list[str]) -> int:
    """Lock, strip the index, check consistency; returns the process exit code."""
    lock_path = PROJECT_ROOT / "Pipfile.lock"
    result = subprocess.run([*pipenv_command(), "lock", *argv], cwd=PROJECT_ROOT)
    if result.returncode != 0:
        return result.returncode
    lock = strip_sources(json.loads(lock_path.read_text()))
    tmp = lock_path.with_suffix(".lock.tmp")
    tmp.write_text(json.dumps(lock, indent=4, sort_keys=True) + "\n")
    tmp.replace(lock_path)
    print("Pipfile.lock: emptied _meta.sources (pip's configured index applies).")
    conflicts = version_conflicts(lock)
    if conflicts:
        print("error: the categories disagree; pin these in the Pipfile and lock again:", file=sys.stderr)
        for line in conflicts:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
