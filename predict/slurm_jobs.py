"""``predict ... --submit slurm --shards N``: an array of N shards and a job that merges them.

Task ``i`` of the array runs the same command with ``--shard i/N --auto-resume``: it
streams its rows, and a requeued task (after a preemption, or after its process was
killed outright: the script requeues it, at most ``max-restarts`` times) continues
its stream instead of starting again. The merge job waits for every task to end
(``--dependency=afterany``, not ``afterok``: with ``afterok`` a failed shard would
leave the merge pending for ever, saying nothing) and runs ``predict merge``, which
refuses a missing or unfinished shard and names it; so its output file says which
shard failed.
"""

from __future__ import annotations

from collections.abc import Sequence

from common import slurm
from common.errors import UserError
from common.paths import display_path, output_dir
from predict.run import PredictOptions, check_submission

SUBMIT_VALUED = ("--submit", "--slurm", "--shards")
SUBMIT_FLAGS = ("--dry-run",)
KEPT_OUT = ("--shard", "--stream", "--resume", "--auto-resume", "--overwrite")
"""Options the tasks set themselves, or that a sharded, resumable prediction cannot take (refused)."""


def shard_script(argv: Sequence[str], name: str, shards: int, options: slurm.SlurmOptions) -> str:
    """The array job: task ``i`` predicts shard ``i`` of ``shards``."""
    arguments = slurm.without(argv, SUBMIT_VALUED, SUBMIT_FLAGS)
    own = {"array": f"0-{shards - 1}", "ntasks-per-node": "1", "requeue": "", "open-mode": "append",
           "output": str(slurm.checked_slurm_dir() / f"predict-{name}-%A_%a.out")}
    command = slurm.quote(slurm.python_command("predict", [*arguments, "--auto-resume", "--no-progress"]))
    body = [f'srun --kill-on-bad-exit=1 {command} --shard "$SLURM_ARRAY_TASK_ID/{shards}"',
            slurm.crash_requeue(options.max_restarts, f"predict-{name}")]
    return slurm.batch_script(f"prediction {name}: shard $SLURM_ARRAY_TASK_ID of {shards} (continued after a requeue)",
                              slurm.sbatch_lines(f"predict-{name}", options, own), "\n".join(body))


def merge_script(name: str, shards: int, options: slurm.SlurmOptions) -> str:
    """The job that merges the shards into ``output/predict/<name>/``."""
    own = {"ntasks": "1", "output": str(slurm.checked_slurm_dir() / f"predict-{name}-merge-%j.out")}
    folders = slurm.quote([str(output_dir().resolve() / "predict")]) + f"/{slurm.quote([name])}-shard-*-of-{shards}"
    command = slurm.quote(slurm.python_command("predict", ["merge"]))
    return slurm.batch_script(f"prediction {name}: merge its {shards} shards", slurm.sbatch_lines(
        f"predict-{name}-merge", options, own),
        f"srun {command} {folders} --name {slurm.quote([name])}")


def submit_prediction(argv: Sequence[str], options: PredictOptions, shards: int | None, slurm_items: Sequence[str],
                      dry_run: bool = False) -> tuple[slurm.Submitted, slurm.Submitted]:
    """Check the prediction here, then write and submit the shards' array job and the merge job that waits for it.

    Args:
        argv: The ``predict`` command line as given (options spelled out).
        options: The prediction it asks for (checked with :func:`predict.run.check_submission`, unless a dry run).
        shards: The number of shards.
        slurm_items: The ``--slurm`` values.
        dry_run: Print the scripts; check, write and submit nothing.

    Raises:
        UserError: No ``--name`` or ``--shards``, an option the tasks set themselves, a mistake in the prediction,
            a bad ``--slurm`` option, or ``sbatch`` missing or refusing.
    """
    name = options.name
    if not name or not shards or shards < 1:
        raise UserError("--submit slurm needs --name (the merged output's name) and --shards N (N >= 1)")
    slurm.check_job_name(name, "--name")
    given = [word.split("=", 1)[0] for word in argv if word.split("=", 1)[0] in KEPT_OUT]
    if given:
        raise UserError(f"--submit slurm: leave out {', '.join(dict.fromkeys(given))}: each task predicts its own "
                        "shard and continues its own stream (--auto-resume)")
    parsed = slurm.parse_options(slurm_items, own_keys=("max-restarts",), one_node=True)
    if not dry_run:
        check_submission(options)
    array = slurm.write_and_submit(slurm.script_path("predict", name), shard_script(argv, name, shards, parsed),
                                   slurm.checked_slurm_dir() / f"predict-{name}-%A_%a.out", dry_run)
    dependency = f"afterany:{array.job_id}" if array.job_id else None
    script = slurm.script_path("predict", f"{name}-merge")
    try:
        merge = slurm.write_and_submit(script, merge_script(name, shards, parsed),
                                       slurm.checked_slurm_dir() / f"predict-{name}-merge-%j.out", dry_run, dependency)
    except UserError as error:
        raise UserError(f"the shards were submitted as array job {array.job_id}, but the merge job was not: {error}; "
                        f"once that is fixed: sbatch --dependency=afterany:{array.job_id} {script}") from None
    return array, merge


def describe(submitted: tuple[slurm.Submitted, slurm.Submitted]) -> str:
    """What a submission prints: the scripts (a dry run), or the jobs."""
    array, merge = submitted
    if array.job_id is None:
        return f"{array.text}\n# then, after every shard ended (--dependency=afterany:<the array's job ID>):\n{merge.text}"
    return (f"submitted Slurm array job {array.job_id} (output {display_path(array.output)}) and merge job "
            f"{merge.job_id} after it (output {display_path(merge.output)}); watch them with: "
            f"squeue -j {array.job_id},{merge.job_id}\n")
