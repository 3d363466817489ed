"""``s3qbb run-quantum``: what each batch job runs for its quantum.

The quantum comes from a description file (this module) or a quantum graph;
`execute` runs it with `s3qbb.batch.job.run_job` and prints the outcome,
whatever selected it.
"""

from __future__ import annotations

__all__ = ["add_job_options", "add_parser", "command", "execute", "job_options"]

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..batch.execution import EXIT_USAGE, load_task, outcome_summary
from ..errors import S3qbbError
from .graph_cmds import add_graph_arguments, resolve_job

if TYPE_CHECKING:
    from ..batch.execution import TaskFunction
    from ..batch.job import JobOptions
    from ..core.dimensions import DimensionUniverse
    from ..core.quantum import Quantum
    from ..repo import RepoConfig

_EPILOG = """\
exit status: 0 succeeded (or already succeeded: the task is not run again);
1 the quantum failed (the task raised, or inputs are missing; records uploaded, do not retry);
2 usage or configuration error (do not retry);
75 transient infrastructure failure (storage unreachable, denied, missing bucket, upload failed: retry);
143 / 130 stopped by SIGTERM / SIGINT (records uploaded with status interrupted: retry).
"""


def add_job_options(p: argparse.ArgumentParser) -> None:
    """Add the options every form of ``run-quantum`` shares (task, config, retries, signals, output)."""
    p.add_argument(
        "--task", help="the task, as package.module:function(butler, quantum) (from the graph with --graph)"
    )
    p.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="directory put first on sys.path to import the task from (default: the current directory)",
    )
    p.add_argument(
        "--config", required=True, help="repository config: a local file/directory or an s3:// URI"
    )
    p.add_argument(
        "--records-file", default=":memory:", help="local SQLite file for the records (default: memory)"
    )
    p.add_argument(
        "--allow-missing-inputs", action="store_true", help="run the task even if inputs are missing"
    )
    p.add_argument(
        "--rerun",
        action="store_true",
        help="run the task even if an earlier attempt succeeded (its records are replaced)",
    )
    p.add_argument(
        "--grace-period",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time between SIGTERM/SIGINT and the forced exit (default: $S3QBB_GRACE_PERIOD or 25)",
    )
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "run-quantum",
        help="run one quantum: build its butler, call the task, upload records and provenance",
        description="Run one quantum as a batch job would.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "quantum",
        nargs="?",
        help="quantum description (SerializedQuantum JSON): a local file or an s3:// URI (or use --graph)",
    )
    add_job_options(p)
    add_graph_arguments(p)
    p.set_defaults(func=command)


def job_options(args: argparse.Namespace) -> JobOptions:
    """Return the `JobOptions` of parsed ``run-quantum`` arguments (see `add_job_options`)."""
    from ..batch.job import JobOptions

    return JobOptions(
        rerun=args.rerun,
        records_file=args.records_file,
        require_inputs=not args.allow_missing_inputs,
        grace_period=args.grace_period,
    )


def usage_error(err: BaseException) -> int:
    """Print a setup error (no traceback, credentials redacted); return its code (2, or 75 for storage)."""
    from ..batch.exitcodes import exit_code_for_error
    from ..provenance.files import redact

    print(f"s3qbb run-quantum: {redact(str(err))}", file=sys.stderr)
    return int(exit_code_for_error(err, in_task=False))


def command(args: argparse.Namespace) -> int:
    """Run the sub-command."""
    from .options import load_config_option

    if args.grace_period is not None and args.grace_period < 0:
        print("s3qbb run-quantum: --grace-period must be 0 or more seconds", file=sys.stderr)
        return EXIT_USAGE
    try:
        repo = load_config_option(args.config)
        quantum, task_spec, universe = resolve_job(args, repo)
        task = load_task(task_spec, args.app_dir)
    except S3qbbError as err:
        return usage_error(err)
    return execute(args, repo, quantum, task, universe)


def execute(
    args: argparse.Namespace,
    repo: RepoConfig,
    quantum: Quantum,
    task: TaskFunction,
    universe: DimensionUniverse | None = None,
) -> int:
    """Run a quantum's job with the options of ``args`` (see `add_job_options`), print the outcome.

    The quantum may come from a description file or a graph; ``universe`` is
    the graph's dimension universe (the configuration's by default).

    Returns
    -------
    exit_code : `int`
        The job's exit code (`s3qbb.batch.exitcodes.ExitCode`).
    """
    from ..batch.job import run_job

    try:
        options = job_options(args)
        result = run_job(repo, quantum, task, options, universe=universe)
    except ValueError as err:  # S3QBB_GRACE_PERIOD invalid
        return usage_error(err)
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
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"quantum {quantum.id} ({label}): {summary['status']}")
        for uri in summary["uploaded"]:
            print(f"  uploaded {uri}")
        if summary["error"]:
            print(f"  error: {summary['error']}", file=sys.stderr)
    return int(result.exit_code)
