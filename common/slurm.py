"""Slurm: the batch scripts ``--submit slurm`` writes and submits, and what a job knows about itself.

One owner for everything the project says to Slurm (docs/clusters.md):

- :func:`batch_script` writes a job script: ``#SBATCH`` lines (the project's own, then
  the user's ``--slurm key=value`` options), the data, model and output folders pinned,
  and the command, run with ``srun`` from the project's folder by the interpreter that
  submitted it (the project's environment, so no ``pipenv`` is needed on the node).
- :func:`submit` runs ``sbatch --parsable`` and returns the job ID.
- :func:`current_job` reads the job a process runs in (``scontrol show job``), and
  :func:`requeue` puts it back in the queue: a training run stopped by a signal does
  it once its checkpoint and status are written.

Scripts and Slurm's output files go to ``output/slurm/``. Nothing here imports torch:
prediction (the evaluation machine) submits too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import UserError
from common.paths import PROJECT_ROOT, data_dir, display_path, model_dir, output_dir

SIGNAL = "USR2"
"""The signal a job gets before its time limit (NCCL may take SIGUSR1 for itself, as submitit notes)."""

GRACE_SECONDS = 120
"""Default seconds between that signal and the time limit: a step plus writing ``last.pt`` (``bench checkpoint``)."""

MAX_RESTARTS = 3
"""Default requeues after a process was killed outright (SIGKILL: out of memory, an operator, a lost process)."""

OWN_KEYS = {"grace": "seconds between the signal and the time limit",
            "max-restarts": "requeues after a process was killed outright",
            "processes-per-node": "training processes per node (torchrun), default 1",
            "stop-signal": "the signal before the time limit: USR2 (default), USR1 or TERM"}
"""``--slurm`` keys the project reads itself; every other key is an ``sbatch`` option."""

STOP_SIGNALS = ("USR2", "USR1", "TERM")
"""What ``stop-signal`` may name."""

RESERVED = ("output", "error", "open-mode", "requeue", "no-requeue", "signal", "chdir", "array", "dependency",
            "parsable", "wrap", "export", "ntasks", "ntasks-per-node", "job-name")
"""``sbatch`` options the script sets itself (a ``--slurm`` value would break what it promises); sbatch takes
abbreviations, so a key that begins one of them is refused too."""

_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+,:@-]+")
"""What a folder named in an ``#SBATCH`` line may hold (no spaces, no ``%``: Slurm reads those as patterns)."""
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_KEY = re.compile(r"^[a-z][a-z0-9-]*$")
_VALUE = re.compile(r"[A-Za-z0-9_.,:=@%+/*|&\[\]-]*")
_TEMPLATE = """\
#!/bin/bash
# {about}
{sbatch}
set -u
cd {root}
export IMAGEPIPE_DATA={data} IMAGEPIPE_MODEL={model} IMAGEPIPE_OUTPUT={output}
{body}
"""
_CRASH_REQUEUE = """\
status=$?
# A process killed outright (SIGKILL: out of memory, an operator) cannot requeue itself: the script
# does, at most {restarts} times (counted in $kills_file; requeues after a signal do not count).
# Other failures, a mistake (exit 2) among them, are not retried.
kills_file={counter}
if [ "$status" -eq 137 ]; then
    kills=$(cat "$kills_file" 2>/dev/null || echo 0)
    if [ "$kills" -lt {restarts} ]; then
        echo $((kills + 1)) > "$kills_file"
        scontrol requeue "$SLURM_JOB_ID"
    fi
fi
exit "$status"
"""


@dataclass(frozen=True)
class SlurmOptions:
    """The ``--slurm key=value`` options of a submission.

    Attributes:
        sbatch: ``sbatch`` options (``time``, ``partition``, ``gpus-per-node``, ...), in the order given; an
            empty value is a flag (``exclusive``).
        grace: Seconds between the signal and the time limit.
        max_restarts: Requeues after a process was killed outright.
        processes_per_node: Training processes per node (more than 1, or more nodes: torchrun).
        stop_signal: The signal before the time limit, without ``SIG``.
    """

    sbatch: dict[str, str] = field(default_factory=dict)
    grace: int = GRACE_SECONDS
    max_restarts: int = MAX_RESTARTS
    processes_per_node: int = 1
    stop_signal: str = SIGNAL

    @property
    def nodes(self) -> int:
        """The ``nodes`` option (1 when not given)."""
        return int(self.sbatch.get("nodes", "1"))


def check_job_name(name: str, option: str) -> None:
    """Refuse a name that cannot stand in an ``#SBATCH`` line and a file name as it is.

    Raises:
        UserError: Naming the option and the characters allowed.
    """
    if not _JOB_NAME.fullmatch(name):
        shown = name if len(name) <= 80 else f"{name[:77]}..."
        raise UserError(f"{option} {shown!r}: a submitted job's name is 1 to 100 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")


def _own_value(key: str, value: str) -> int | str:
    """A project key's value, checked."""
    if key == "stop-signal":
        if value.removeprefix("SIG") not in STOP_SIGNALS:
            raise UserError(f"--slurm stop-signal={value}: one of {list(STOP_SIGNALS)}")
        return value.removeprefix("SIG")
    if not value.isdigit() or int(value) < (0 if key == "max-restarts" else 1):
        raise UserError(f"--slurm {key}={value}: a whole number (the {OWN_KEYS.get(key, 'nodes')})")
    return int(value)


def parse_options(items: Sequence[str], own_keys: Sequence[str] = tuple(OWN_KEYS), one_node: bool = False
                  ) -> SlurmOptions:
    """``["time=1:00:00", "grace=90", "exclusive"]`` into :class:`SlurmOptions`.

    Args:
        items: The ``--slurm`` values.
        own_keys: The project's keys this kind of job takes.
        one_node: The job runs one task on one node (``nodes`` other than 1 is refused).

    Raises:
        UserError: An item that is not ``key[=value]``, a key the script sets itself or this job does not take,
            an unsafe value, or a number that is not one.
    """
    sbatch: dict[str, str] = {}
    own: dict[str, int | str] = {}
    for item in items:
        key, _, value = item.partition("=")
        key = key.removeprefix("--")
        if not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
            raise UserError(f"--slurm {item!r}: expected key=value with an sbatch option's name (e.g. time=4:00:00, "
                            "partition=gpu, gpus-per-node=4, or a flag: exclusive) and a value of letters, digits "
                            "and _.,:=@%+/*|&[]-")
        if any(reserved.startswith(key) for reserved in RESERVED):
            raise UserError(f"--slurm {key}: the job script sets that itself (docs/clusters.md); leave it out")
        if key in OWN_KEYS and key not in own_keys:
            raise UserError(f"--slurm {key}: this job does not take it (it takes {list(own_keys) or 'none'})")
        if key in OWN_KEYS or key == "nodes":
            checked = _own_value(key, value)
            if key == "nodes" and one_node and checked != 1:
                raise UserError(f"--slurm nodes={value}: this job runs one task on one node")
            if key in OWN_KEYS:
                own[key] = checked
                continue
        sbatch[key] = value
    return SlurmOptions(sbatch, int(own.get("grace", GRACE_SECONDS)), int(own.get("max-restarts", MAX_RESTARTS)),
                        int(own.get("processes-per-node", 1)), str(own.get("stop-signal", SIGNAL)))


def python_command(module: str, arguments: Sequence[str]) -> list[str]:
    """``<this interpreter> -m <module> <arguments>``: the submitting environment runs the job."""
    return [sys.executable, "-m", module, *arguments]


def quote(words: Sequence[str]) -> str:
    """A shell command line for ``words``."""
    return " ".join(shlex.quote(str(word)) for word in words)


def slurm_dir() -> Path:
    """``output/slurm/``: job scripts and Slurm's output files."""
    return output_dir() / "slurm"


def sbatch_lines(name: str, options: SlurmOptions, own: Mapping[str, str]) -> str:
    """``#SBATCH`` lines: the job name, the script's own options, then the user's.

    Args:
        name: The job's name.
        options: The user's options.
        own: The script's own options (``requeue``: empty value for a flag).
    """
    merged = {"job-name": name, **own, **options.sbatch}
    return "\n".join(f"#SBATCH --{key}" + (f"={value}" if value else "") for key, value in merged.items())


def checked_slurm_dir() -> Path:
    """``output/slurm/``, refused when its path cannot stand in an ``#SBATCH`` line.

    Raises:
        UserError: The output folder's path holds a space, ``%`` or another character Slurm would misread.
    """
    folder = slurm_dir().resolve()
    if not _SAFE_PATH.fullmatch(str(folder)):
        raise UserError(f"{folder}: an #SBATCH line cannot name this folder (a space, '%' or another character "
                        "Slurm reads otherwise); set IMAGEPIPE_OUTPUT to a folder of plain characters")
    return folder


def batch_script(about: str, sbatch: str, body: str) -> str:
    """A whole job script.

    Args:
        about: One line saying what the job does.
        sbatch: The ``#SBATCH`` lines (:func:`sbatch_lines`).
        body: The commands.
    """
    folders = {name: shlex.quote(str(folder().resolve())) for name, folder in
               (("data", data_dir), ("model", model_dir), ("output", output_dir))}
    return _TEMPLATE.format(about=about, sbatch=sbatch,
                            root=shlex.quote(str(PROJECT_ROOT)), body=body.rstrip("\n"), **folders)


def crash_requeue(restarts: int, stem: str) -> str:
    """The script's last lines: requeue a job whose process was killed outright, at most ``restarts`` times.

    Args:
        restarts: The most requeues after a kill (those after a signal do not count).
        stem: The job's files' stem in ``output/slurm/`` (its kill counter is ``<stem>-<job ID>.kills``).
    """
    counter = f'{shlex.quote(str(checked_slurm_dir() / stem))}-"$SLURM_JOB_ID".kills'
    return _CRASH_REQUEUE.format(restarts=restarts, counter=counter)


def script_path(stage: str, name: str) -> Path:
    """``output/slurm/<stage>-<name>-<time>.sh`` (a new file per submission)."""
    return slurm_dir() / f"{stage}-{name}-{time.strftime('%Y%m%d-%H%M%S')}.sh"


def write_script(path: Path, text: str) -> Path:
    """Write a job script (executable) at ``path``, or beside it as ``<stem>-2.sh``, ... when taken; returns where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        candidate = path if attempt == 1 else path.with_name(f"{path.stem}-{attempt}{path.suffix}")
        try:
            with candidate.open("x") as out:
                out.write(text)
        except FileExistsError:
            continue
        candidate.chmod(0o755)
        return candidate
    raise UserError(f"{display_path(path.parent)}: too many job scripts named {path.stem}-*; clean the folder")


def submit(script: Path, dependency: str | None = None) -> str:
    """``sbatch --parsable [--dependency=...] script``; returns the job ID.

    Raises:
        UserError: There is no ``sbatch`` here, or it refused the job (its message is given).
    """
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise UserError(f"sbatch not found: submit from a machine of the Slurm cluster (a login node); the job "
                        f"script is written at {display_path(script)}")
    command = [sbatch, "--parsable", *([f"--dependency={dependency}"] if dependency else []), str(script)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as error:
        raise UserError(f"sbatch could not submit {display_path(script)}: {error}") from None
    if result.returncode != 0:
        raise UserError(f"sbatch refused {display_path(script)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip().split(";")[0]


def parse_duration(text: str) -> float | None:
    """Seconds in a Slurm duration (``[D-]HH:MM:SS``, ``MM:SS``, ``MM``); None for ``UNLIMITED`` or unreadable."""
    days, _, rest = text.rpartition("-") if "-" in text else ("0", "", text)
    parts = rest.split(":")
    if not (days.isdigit() and parts and all(part.isdigit() for part in parts) and len(parts) <= 3):
        return None
    numbers = [int(part) for part in parts]
    if len(numbers) == 1:
        numbers = [0, numbers[0], 0]  # minutes
    elif len(numbers) == 2:
        numbers = [0, *numbers]
    return int(days) * 86400 + numbers[0] * 3600 + numbers[1] * 60 + numbers[2]


@dataclass(frozen=True)
class SlurmJob:
    """The batch job a process runs in.

    Attributes:
        job_id: ``SLURM_JOB_ID``.
        restarts: How often it was requeued.
        requeue: Whether Slurm may requeue it.
        batch: A batch job (not an interactive allocation).
        time_left: Seconds to its time limit when read (None: unlimited).
        stdout: Slurm's output file for it.
        state: ``RUNNING``, ``PENDING``, ``COMPLETING``, ...
    """

    job_id: str
    restarts: int
    requeue: bool
    batch: bool
    time_left: float | None
    stdout: str | None
    state: str = "RUNNING"

    def as_record(self) -> dict[str, object]:
        """What a run's record keeps of it."""
        return {"job": self.job_id, "restarts": self.restarts, "output": self.stdout}


def current_job(environ: Mapping[str, str] = os.environ) -> SlurmJob | None:
    """The Slurm job this process runs in.

    Returns:
        The job as ``scontrol show job`` describes it; None when not under Slurm, or ``scontrol`` cannot tell.
    """
    job_id = environ.get("SLURM_JOB_ID")
    scontrol = shutil.which("scontrol")
    if not job_id or scontrol is None:
        return None
    try:
        out = subprocess.run([scontrol, "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    fields = dict(item.split("=", 1) for item in out.stdout.split() if "=" in item)
    if out.returncode != 0 or fields.get("JobId") != job_id:
        return None
    limit, elapsed = parse_duration(fields.get("TimeLimit", "")), parse_duration(fields.get("RunTime", ""))
    left = None if limit is None or elapsed is None else max(0.0, limit - elapsed)
    return SlurmJob(job_id, int(fields.get("Restarts", "0") or 0), fields.get("Requeue") == "1",
                    fields.get("BatchFlag") == "1", left, fields.get("StdOut"), fields.get("JobState", ""))


def stop_reason(job: SlurmJob, grace: float) -> str:
    """``time limit`` when the job's limit is at most ``grace`` seconds away (plus a minute of slack), else
    ``preemption``: why a signal stopped it."""
    return "time limit" if job.time_left is not None and job.time_left <= grace + 60 else "preemption"


def requeue(job_id: str) -> str | None:
    """``scontrol requeue <job_id>``; returns None when done, else why not."""
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return "scontrol not found"
    try:
        result = subprocess.run([scontrol, "requeue", job_id], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    return None if result.returncode == 0 else (result.stderr.strip() or f"exit status {result.returncode}")


def without(argv: Sequence[str], valued: Sequence[str], flags: Sequence[str] = ()) -> list[str]:
    """``argv`` without the options ``valued`` (each with its value, as ``--x v`` or ``--x=v``) and ``flags``."""
    kept: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        name = word.split("=", 1)[0]
        if word in valued:
            skip = True
        elif name in valued or word in flags:
            continue
        else:
            kept.append(word)
    return kept


@dataclass(frozen=True)
class Submitted:
    """A job script written and, unless a dry run, submitted.

    Attributes:
        script: The job script.
        text: Its text.
        job_id: Slurm's job ID (None for a dry run).
        output: Slurm's output file, with ``%j``/``%A``/``%a`` as Slurm fills them.
    """

    script: Path
    text: str
    job_id: str | None
    output: Path


def write_and_submit(script: Path, text: str, output: Path, dry_run: bool,
                     dependency: str | None = None) -> Submitted:
    """Write the job script (unless a dry run) and submit it."""
    if dry_run:
        return Submitted(script, text, None, output)
    if Path.cwd().resolve() != PROJECT_ROOT.resolve():
        raise UserError(f"submit from the project's folder ({PROJECT_ROOT}): the job runs there, and reads the "
                        "command's relative paths from there")
    script = write_script(script, text)
    job_id = submit(script, dependency)
    return Submitted(script, text, job_id, Path(str(output).replace("%j", job_id).replace("%A", job_id)))
