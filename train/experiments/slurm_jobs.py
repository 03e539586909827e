"""``train --submit slurm`` and ``sweep --submit slurm``: the job scripts, written and submitted.

A training job runs ``train ... --name X --auto-resume`` under ``srun`` (one process, or
``torchrun`` with ``processes-per-node`` workers on each of ``nodes`` nodes). It asks
for SIGUSR2 ``grace`` seconds before its time limit (``--signal=USR2@<grace>``, sent to
the job's processes, not only the batch shell) and may be requeued (``--requeue``):
on the signal, or on a preemption's SIGTERM, the run writes its checkpoint and rank 0
requeues the job (:mod:`train.resilience.preemption`); a process killed outright is
requeued by the script, at most ``max-restarts`` times. The requeued job runs the same
script; ``--auto-resume`` continues the run, or ends at once when it already ended.

A sweep job is an array: each task runs the same ``sweep`` command (``--trials`` trials
each) against one study, with its own sampler seed (``--seed`` plus the task's index),
so the tasks propose different trials. Several tasks need a shared ``--storage``
(PostgreSQL, docs/experiments.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from common import slurm
from common.errors import UserError
from common.paths import display_path
from train.config import LoadedConfig

SUBMIT_VALUED = ("--submit", "--slurm", "--tasks")
"""Options of the submitting command line that the job's own command line leaves out."""

SUBMIT_FLAGS = ("--dry-run",)


def training_script(argv: Sequence[str], name: str, options: slurm.SlurmOptions, loaded: LoadedConfig) -> str:
    """The job script for ``train <argv> --submit slurm``.

    Args:
        argv: The ``train`` command line as given.
        name: The run's ``--name``.
        options: The ``--slurm`` options.
        loaded: The resolved training config (checked before anything is submitted).

    Raises:
        UserError: The config's ``checkpoint.signals`` leave out the signals the job relies on.
    """
    needed = [f"SIG{options.stop_signal}", "SIGTERM"]
    missing = [name for name in dict.fromkeys(needed) if name not in loaded.config.checkpoint.signals]
    if missing:
        raise UserError(f"checkpoint.signals: {list(loaded.config.checkpoint.signals)} leaves out {missing}: a Slurm "
                        f"job gets SIG{options.stop_signal} before its time limit and SIGTERM on a preemption; add "
                        "them, or choose another --slurm stop-signal (docs/clusters.md)")
    arguments = slurm.without(argv, SUBMIT_VALUED, SUBMIT_FLAGS)
    if "--auto-resume" not in arguments:
        arguments.append("--auto-resume")
    own = {"nodes": str(options.nodes), "ntasks-per-node": "1", "requeue": "",
           "signal": f"{options.stop_signal}@{options.grace}", "open-mode": "append",
           "output": str(slurm.checked_slurm_dir() / f"train-{name}-%j.out")}
    body = [f"export IMAGEPIPE_SLURM_GRACE={options.grace}"]
    if options.nodes == 1 and options.processes_per_node == 1:
        body.append("srun --kill-on-bad-exit=1 " + slurm.quote(slurm.python_command("train", arguments)))
    else:
        signals = ",".join(dict.fromkeys(f"SIG{s}" for s in ("TERM", "INT", "USR1", options.stop_signal)))
        launcher = ["torch.distributed.run", f"--nproc-per-node={options.processes_per_node}",
                    f"--max-restarts={options.max_restarts}", f"--signals-to-handle={signals}",
                    f"--shutdown-timeout={options.grace}"]
        body += ['head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
                 '[ -n "$head_node" ] || { echo "error: scontrol names no node of this job" >&2; exit 1; }',
                 "srun --kill-on-bad-exit=1 " + slurm.quote(slurm.python_command(launcher[0], launcher[1:])) +
                 ' --nnodes="$SLURM_JOB_NUM_NODES" --rdzv-backend=c10d --rdzv-endpoint="$head_node:${RDZV_PORT:-29400}"'
                 ' --rdzv-id="$SLURM_JOB_ID" ' + slurm.quote(["-m", "train", *arguments])]
    body.append(slurm.crash_requeue(options.max_restarts, f"train-{name}"))
    sbatch = slurm.sbatch_lines(name, options, own)
    return slurm.batch_script(f"training run {name}: started, or continued after a requeue (--auto-resume)",
                              sbatch, "\n".join(body))


def submit_training(argv: Sequence[str], name: str | None, slurm_items: Sequence[str], loaded: LoadedConfig,
                    dry_run: bool = False) -> slurm.Submitted:
    """Write and submit the job script of ``train <argv> --submit slurm``.

    Raises:
        UserError: No ``--name``, a bad ``--slurm`` option, or ``sbatch`` missing or refusing.
    """
    if not name:
        raise UserError("--submit slurm needs --name: the requeued job continues the run of that name (--auto-resume)")
    slurm.check_job_name(name, "--name")
    options = slurm.parse_options(slurm_items)
    text = training_script(argv, name, options, loaded)
    return slurm.write_and_submit(slurm.script_path("train", name), text,
                                  slurm.checked_slurm_dir() / f"train-{name}-%j.out", dry_run)


def sweep_script(argv: Sequence[str], study: str, tasks: int, seed: int, options: slurm.SlurmOptions) -> str:
    """The array job script for ``sweep <argv> --submit slurm --tasks N``."""
    arguments = slurm.without(argv, (*SUBMIT_VALUED, "--seed"), SUBMIT_FLAGS)
    own = {"array": f"0-{tasks - 1}", "ntasks-per-node": "1", "open-mode": "append",
           "output": str(slurm.checked_slurm_dir() / f"sweep-{study}-%A_%a.out")}
    command = slurm.quote(slurm.python_command("train", ["sweep", *arguments]))
    body = [f'srun --kill-on-bad-exit=1 {command} --seed "$(({seed} + SLURM_ARRAY_TASK_ID))"']
    return slurm.batch_script(f"sweep {study}: {tasks} tasks, one study, a sampler seed each",
                              slurm.sbatch_lines(f"sweep-{study}", options, own), "\n".join(body))


def submit_sweep(argv: Sequence[str], study: str, tasks: int, seed: int, slurm_items: Sequence[str],
                 dry_run: bool = False) -> slurm.Submitted:
    """Write and submit the array job of ``sweep <argv> --submit slurm --tasks N``.

    Raises:
        UserError: A bad ``--slurm`` option, or ``sbatch`` missing or refusing.
    """
    slurm.check_job_name(study, "--study")
    options = slurm.parse_options(slurm_items, own_keys=(), one_node=True)
    text = sweep_script(argv, study, tasks, seed, options)
    return slurm.write_and_submit(slurm.script_path("sweep", study), text,
                                  slurm.checked_slurm_dir() / f"sweep-{study}-%A_%a.out", dry_run)


def describe(submitted: slurm.Submitted) -> str:
    """What a submission prints."""
    if submitted.job_id is None:
        return submitted.text
    return (f"submitted Slurm job {submitted.job_id}: script {display_path(submitted.script)}, output "
            f"{display_path(submitted.output)}; watch it with: squeue -j {submitted.job_id}")
