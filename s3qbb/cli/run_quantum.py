"""``s3qbb run-quantum``: what each batch job runs for its quantum.

The quantum comes from a description file or from a quantum graph
(``--graph``, with ``--index``, ``--quantum`` or the batch system's array
index); `execute` runs it with `s3qbb.batch.job.run_job` and prints the
outcome, whatever selected it. This module is imported by every batch job:
it imports nothing heavy until the command runs.
"""

from __future__ import annotations

__all__ = ["execute", "resolve_job", "run_quantum"]

import json
import logging
import sys
import uuid
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError, S3qbbError
from .options import S3qbbCommand, global_options, json_option, resume_gc

if TYPE_CHECKING:
    from ..batch.execution import TaskFunction
    from ..batch.job import JobOptions
    from ..batch.signals import GracefulTermination
    from ..core.dimensions import DimensionUniverse
    from ..core.quantum import Quantum
    from ..repo import RepoConfig

_LOG = logging.getLogger(__name__)

_HELP = """\
Run one quantum as a batch job would.

QUANTUM is a quantum description (SerializedQuantum JSON): a local file or an
s3:// URI, run with --task. Or run one quantum of a quantum graph with
--graph: without --index or --quantum the index comes from the first of
AWS_BATCH_JOB_ARRAY_INDEX, JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID,
PBS_ARRAY_INDEX that is set.
"""


class _RunQuantumCommand(S3qbbCommand):
    """``run-quantum``: its help ends with the exit codes of `s3qbb.batch.exitcodes`.

    It resumes the garbage collector itself, once the configuration, the
    quantum and the task are loaded, before the job runs.
    """

    resumes_gc = True

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the table of exit codes (the one of `s3qbb.batch.exitcodes.EXIT_CODES`)."""
        from ..batch.exitcodes import EXIT_CODES

        with formatter.section("Exit status"):
            formatter.write_dl(
                [(str(int(i.code)), f"{i.meaning}; retry: {'yes' if i.retry else 'no'}") for i in EXIT_CODES]
            )


def usage_error(err: BaseException) -> int:
    """Print a setup error (no traceback, credentials redacted); return its code (2, or 75 for storage)."""
    from ..batch.exitcodes import exit_code_for_error
    from ..provenance.files import redact

    print(f"s3qbb run-quantum: {redact(str(err))}", file=sys.stderr)
    return int(exit_code_for_error(err, in_task=False))


def _records_file(value: str) -> str:
    """Refuse a ``--records-file`` no retry can create: a folder, or a path under a file."""
    import os
    from pathlib import Path

    if value == ":memory:":
        return value
    path = Path(value)
    if path.is_dir():
        raise click.BadParameter(f"{value!r} is a folder: give the path of a file in it.")
    for parent in path.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise click.BadParameter(
                    f"{str(parent)!r} is not a folder (a file or a broken link is in the way), so "
                    f"{value!r} cannot be created: give a path in a folder, or remove it."
                )
            break
    return value


@click.command(
    "run-quantum",
    cls=_RunQuantumCommand,
    help=_HELP,
    short_help="run one quantum: build its butler, call the task, upload records and provenance",
)
@click.argument("quantum", required=False)
@click.option(
    "--task",
    metavar="MODULE:FUNCTION",
    help="the task, as package.module:function(butler, quantum) (from the graph with --graph)",
)
@click.option(
    "--app-dir",
    default=".",
    metavar="DIR",
    help="directory put first on sys.path to import the task from (default: the current directory)",
)
@click.option(
    "--config",
    metavar="LOCATION",
    required=True,
    help="repository config: a local file/directory or an s3:// URI",
)
@click.option(
    "--records-file",
    metavar="PATH",
    default=":memory:",
    callback=lambda ctx, param, value: _records_file(value),
    help="local SQLite file for the records (default: memory)",
)
@click.option("--allow-missing-inputs", is_flag=True, help="run the task even if inputs are missing")
@click.option(
    "--rerun",
    is_flag=True,
    help="run the task even if an earlier attempt succeeded (its records are replaced)",
)
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    envvar="S3QBB_GRACE_PERIOD",
    show_envvar=True,
    help="time between SIGTERM/SIGINT and the forced exit (default: 25)",
)
@json_option("print the outcome as JSON")
@click.option("--graph", metavar="URI", help="quantum graph file: a local path or an s3:// URI")
@click.option("--index", type=int, metavar="N", help="index of the quantum in the graph's order")
@click.option("--quantum", "quantum_id", type=click.UUID, metavar="UUID", help="ID of the quantum")
@click.option(
    "--stage", type=int, metavar="S", help="count the index within stage S (one array job per stage)"
)
@global_options
def run_quantum(
    quantum: str | None,
    task: str | None,
    app_dir: str,
    config: str,
    records_file: str,
    allow_missing_inputs: bool,
    rerun: bool,
    grace_period: float | None,
    as_json: bool,
    graph: str | None,
    index: int | None,
    quantum_id: uuid.UUID | None,
    stage: int | None,
) -> int:
    """Run one quantum: build its butler, call the task, upload records and provenance."""
    from ..batch.execution import load_task
    from ..batch.job import JobOptions
    from ..batch.signals import GracefulTermination, JobInterrupted
    from ..batch.signals import grace_period as grace_of
    from .options import load_config_option, owns_process

    if index is not None and quantum_id is not None:
        raise click.UsageError("--index and --quantum both select the quantum: give one of them.")
    options = JobOptions(
        rerun=rerun,
        records_file=records_file,
        require_inputs=not allow_missing_inputs,
        grace_period=grace_period,
    )
    # From here to the process's exit a signal gives a documented exit code and a log line: the
    # handlers stay installed after the job when this command is the process's own (`owns_process`).
    with GracefulTermination(grace_of(grace_period), until_exit=owns_process()) as termination:
        try:
            repo = load_config_option(config)
            job, task_spec, universe = resolve_job(
                repo,
                quantum_file=quantum,
                task=task,
                graph=graph,
                index=index,
                quantum_id=quantum_id,
                stage=stage,
            )
            task_function = load_task(task_spec, app_dir)
        except S3qbbError as err:
            code = usage_error(err)
            termination.done(code)
            return code
        except JobInterrupted as err:
            _LOG.warning(
                "Job interrupted before its quantum was loaded (exit %d): nothing uploaded.", err.exit_code
            )
            termination.done(err.exit_code)
            return int(err.exit_code)
        resume_gc()  # start-up is over: the job and its task run with the garbage collector on
        return execute(options, repo, job, task_function, universe, as_json=as_json, termination=termination)


def resolve_job(
    repo: RepoConfig,
    *,
    quantum_file: str | None = None,
    task: str | None = None,
    graph: str | None = None,
    index: int | None = None,
    quantum_id: uuid.UUID | None = None,
    stage: int | None = None,
) -> tuple[Quantum, str, DimensionUniverse | None]:
    """Return the quantum, task and universe that ``run-quantum``'s options select (graph or file form).

    Parameters
    ----------
    repo : `~s3qbb.repo.RepoConfig`
        The repository configuration (``--config``).
    quantum_file : `str`, optional
        The quantum description (the ``QUANTUM`` argument).
    task : `str`, optional
        ``--task``.
    graph, index, quantum_id, stage : optional
        ``--graph``, ``--index``, ``--quantum``, ``--stage``.

    Returns
    -------
    quantum : `~s3qbb.core.quantum.Quantum`
        The quantum to run.
    task : `str`
        Its task, as ``module:function``.
    universe : `~s3qbb.core.dimensions.DimensionUniverse` or `None`
        The graph's universe (`None`: the configuration's).

    Raises
    ------
    ConfigError
        If the options do not select one quantum and one task (a usage error).
    """
    if graph:
        from ..batch.jobindex import graph_job

        if quantum_file:
            raise ConfigError("Give either a quantum file or --graph, not both.")
        if task:
            raise ConfigError("With --graph the task comes from the graph; leave out --task.")
        return graph_job(graph, repo, index=index, quantum_id=quantum_id, stage=stage)
    if index is not None or quantum_id is not None or stage is not None:
        raise ConfigError("--index, --quantum and --stage select a quantum of a --graph; give --graph.")
    if not quantum_file or not task:
        raise ConfigError("Give a quantum file and --task, or --graph URI.")
    from ..batch.execution import load_quantum

    return load_quantum(quantum_file, repo.universe()), task, None


def execute(
    options: JobOptions,
    repo: RepoConfig,
    quantum: Quantum,
    task: TaskFunction,
    universe: DimensionUniverse | None = None,
    *,
    as_json: bool = False,
    termination: GracefulTermination | None = None,
) -> int:
    """Run a quantum's job and print the outcome (one line, or JSON with ``as_json``).

    The quantum may come from a description file or a graph; ``universe`` is
    the graph's dimension universe (the configuration's by default). With
    ``termination`` (entered by the caller) the signal handlers cover the
    printing too: the job's exit code is recorded in it (its ``done``) before
    anything is printed, so a signal from then on only gets logged.

    Returns
    -------
    exit_code : `int`
        The job's exit code (`s3qbb.batch.exitcodes.ExitCode`).
    """
    from ..batch.execution import outcome_summary
    from ..batch.job import run_job

    try:
        result = run_job(repo, quantum, task, options, universe=universe, termination=termination)
    except ValueError as err:  # S3QBB_GRACE_PERIOD invalid (for callers not going through the option)
        return usage_error(err)
    if termination is not None:
        from ..batch.logs import log_context

        with log_context(quantum_id=quantum.id, task_label=quantum.taskLabel):
            termination.done(result.exit_code)
    label = quantum.taskLabel or quantum.taskName
    if result.outcome is None:
        status = "already-succeeded" if result.previous is not None else "interrupted"
        summary: dict[str, Any] = {
            "exit_code": int(result.exit_code),
            "status": status,
            "uploaded": [],
            "error": None,
            "missing_inputs": [],
        }
    else:
        summary = outcome_summary(result.outcome)
        summary["exit_code"] = int(result.exit_code)
    if result.attempt is not None:
        summary["attempt_id"] = result.attempt.attempt_id
    if as_json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"quantum {quantum.id} ({label}): {summary['status']}")
        for uri in summary["uploaded"]:
            print(f"  uploaded {uri}")
        if summary["error"]:
            print(f"  error: {summary['error']}", file=sys.stderr)
    return int(result.exit_code)
