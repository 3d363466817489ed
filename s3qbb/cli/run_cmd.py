"""``s3qbb run``: run a whole quantum graph here (worker processes) or on a Dask cluster."""

from __future__ import annotations

__all__ = ["add_parser", "command"]

import argparse
import json
import logging
import sys
from typing import Any

from ..errors import S3qbbError

EXIT_USAGE = 2


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    from ..batch.local import default_jobs

    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run every quantum of a graph in dependency order, skipping those that already succeeded",
        description=(
            "Runs each quantum as 's3qbb run-quantum --graph URI --index I' (local executor) or in the "
            "workers of a Dask cluster. Quanta that already succeeded are skipped, so running again "
            "resumes. Exit status: 0 every quantum succeeded, 1 a quantum failed (or could not run "
            "because an upstream one failed), 75 only retryable failures (run again), 2 usage error, "
            "143/130 stopped by SIGTERM/SIGINT."
        ),
    )
    p.add_argument(
        "--graph", required=True, metavar="URI", help="quantum graph: a local path or an s3:// URI"
    )
    p.add_argument("--config", required=True, help="repository config: a local file or an s3:// URI")
    p.add_argument(
        "-j", "--jobs", type=int, default=default_jobs(), help="quanta running at once (default: CPUs usable)"
    )
    p.add_argument("--executor", choices=("local", "dask"), default="local", help="where quanta run")
    p.add_argument("--scheduler", metavar="ADDR", help="Dask scheduler address (with --executor dask)")
    p.add_argument("--rerun", action="store_true", help="run quanta that already succeeded again")
    p.add_argument("--json", action="store_true", help="print the outcome of each quantum as JSON")
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    """Run the sub-command."""
    from ..provenance.files import redact

    if args.jobs < 1:
        print("s3qbb run: -j must be at least 1.", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.executor == "dask":
            return _run_dask(args)
        return _run_local(args)
    except S3qbbError as err:
        from ..batch.exitcodes import exit_code_for_error

        print(f"s3qbb run: {redact(str(err))}", file=sys.stderr)
        return int(exit_code_for_error(err, in_task=False))  # storage unreachable: 75, as run-quantum


def _run_local(args: argparse.Namespace) -> int:
    from ..batch.local import QuantumRun, run_graph, summary_exit_code

    json_log = args.log_format == "json"

    def progress(run: QuantumRun, done: int, total: int) -> None:
        code = "" if run.exit_code is None else f", exit {run.exit_code}, {run.duration_s:.1f} s"
        line = f"[{done}/{total}] {run.index:>5} {run.node.label} {run.node.id}: {run.status}{code}"
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)
        if run.stderr_tail and json_log:  # one JSON object a line: the tail goes in a log record
            logging.getLogger("s3qbb.batch.local").warning(
                "Quantum %s (%s, index %d) exited %s; the end of its log:\n%s",
                run.node.id, run.node.label, run.index, run.exit_code, run.stderr_tail,
            )  # fmt: skip
        elif run.stderr_tail:
            print("        " + run.stderr_tail.replace("\n", "\n        "), file=sys.stderr, flush=True)

    if args.scheduler:
        print("s3qbb run: --scheduler needs --executor dask.", file=sys.stderr)
        return EXIT_USAGE
    summary = run_graph(
        args.graph,
        args.config,
        jobs=args.jobs,
        rerun=args.rerun,
        on_result=progress,
        extra_args=("--log-format", "json") if json_log else (),
    )
    code = summary_exit_code(summary)
    counts: dict[str, int] = {}
    for r in summary.runs.values():
        counts[r.status] = counts.get(r.status, 0) + 1
    if args.json:
        out = {
            "exit_code": code,
            "counts": counts,
            "elapsed_s": round(summary.elapsed_s, 3),
            "quanta": [
                {"index": r.index, "id": str(r.node.id), "label": r.node.label, "status": r.status,
                 "exit_code": r.exit_code}
                for r in sorted(summary.runs.values(), key=lambda r: r.index)
            ],
        }  # fmt: skip
        print(json.dumps(out, indent=1))
    else:
        text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"graph {args.graph}: {text} in {summary.elapsed_s:.1f} s; exit {code}")
    return code


def _run_dask(args: argparse.Namespace) -> int:
    from ..batch.dask import _import_distributed, run_graph_on_dask
    from ..batch.exitcodes import ExitCode
    from ..batch.graph import QuantumGraph
    from .options import load_config_option

    if not args.scheduler:
        print("s3qbb run: --executor dask needs --scheduler ADDR.", file=sys.stderr)
        return EXIT_USAGE
    distributed = _import_distributed()
    repo = load_config_option(args.config)
    graph = QuantumGraph.load(args.graph, config=repo.datastore.endpoint_config())
    try:
        client = distributed.Client(args.scheduler)
    except OSError as err:  # refused or timed out: the cluster may come up, so retryable
        print(
            f"s3qbb run: cannot reach the Dask scheduler at {args.scheduler} ({err}); check the address "
            "and that the scheduler is running, then run again.",
            file=sys.stderr,
        )
        return int(ExitCode.TEMPFAIL)
    with client:
        results = run_graph_on_dask(graph, repo, client=client, rerun=args.rerun)
    counts: dict[str, int] = {}
    for r in results.values():
        counts[r.status] = counts.get(r.status, 0) + 1
    codes = {r.exit_code for r in results.values() if not r.succeeded}
    code = 0 if not codes else (75 if codes <= {75, None} and None not in codes else 1)
    if args.json:
        rows = [
            {"id": str(r.quantum_id), "label": r.task_label, "status": r.status, "exit_code": r.exit_code}
            for r in results.values()
        ]
        print(json.dumps({"exit_code": code, "counts": counts, "quanta": rows}, indent=1))
    else:
        for r in results.values():
            print(f"{r.task_label} {r.quantum_id}: {r.status}" + (f" ({r.error})" if r.error else ""))
        text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"graph {args.graph}: {text} on {args.scheduler}; exit {code}")
    return code
