"""``s3qbb run-quantum``: what each batch job runs for its quantum."""

from __future__ import annotations

__all__ = ["add_parser", "command"]

import argparse
import json
import sys
from typing import Any

from ..batch.execution import (
    EXIT_INFRASTRUCTURE_FAILURE,
    load_task,
    outcome_summary,
    run_quantum,
)
from ..errors import S3qbbError
from .graph_cmds import add_graph_arguments, resolve_job


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "run-quantum",
        help="run one quantum: build its butler, call the task, upload records and provenance",
        description=(
            "Exit status: 0 success, 1 the task failed (its records and provenance were uploaded with status "
            "failed), 2 infrastructure failure (configuration, storage, missing inputs)."
        ),
    )
    p.add_argument(
        "quantum",
        nargs="?",
        help="quantum description (SerializedQuantum JSON): a local file or an s3:// URI (or use --graph)",
    )
    p.add_argument(
        "--task", help="the task, as package.module:function(butler, quantum) (from the graph with --graph)"
    )
    add_graph_arguments(p)
    p.add_argument(
        "--config", required=True, help="repository config: a local file/directory or an s3:// URI"
    )
    p.add_argument(
        "--records-file", default=":memory:", help="local SQLite file for the records (default: memory)"
    )
    p.add_argument(
        "--allow-missing-inputs", action="store_true", help="run the task even if inputs are missing"
    )
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    """Run the sub-command."""
    from ..repo import load_repo_config

    try:
        repo = load_repo_config(args.config)
        quantum, task_spec, universe = resolve_job(args, repo)
        task = load_task(task_spec)
    except S3qbbError as err:
        from ..provenance.files import redact

        print(f"s3qbb run-quantum: {redact(str(err))}", file=sys.stderr)
        return EXIT_INFRASTRUCTURE_FAILURE
    outcome = run_quantum(
        repo,
        quantum,
        task,
        universe=universe,
        filename=args.records_file,
        require_inputs=not args.allow_missing_inputs,
    )
    summary = outcome_summary(outcome)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"quantum {quantum.id} ({quantum.taskLabel or quantum.taskName}): {summary['status']}")
        for uri in summary["uploaded"]:
            print(f"  uploaded {uri}")
        if summary["error"]:
            print(f"  error: {summary['error']}", file=sys.stderr)
    return outcome.exit_code
