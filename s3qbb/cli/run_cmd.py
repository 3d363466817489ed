"""``s3qbb run``: run a whole quantum graph here (worker processes) or on a Dask cluster."""

from __future__ import annotations

__all__ = ["run"]

import json
import logging
import signal
import sys

import click

from ..errors import S3qbbError
from .options import S3qbbCommand, current_global_options, global_options, json_option

EXIT_USAGE = 2


@click.command(
    "run",
    cls=S3qbbCommand,
    help=(
        "Run every quantum of a graph in dependency order, skipping those that already succeeded.\n\n"
        "Runs each quantum as 's3qbb run-quantum --graph URI --index I' (local executor) or in the "
        "workers of a Dask cluster. Quanta that already succeeded are skipped, so running again "
        "resumes. Exit status: 0 every quantum succeeded, 1 a quantum failed (or could not run "
        "because an upstream one failed), 75 only retryable failures (run again), 2 usage error, "
        "143/130 stopped by SIGTERM/SIGINT."
    ),
    short_help="run every quantum of a graph in dependency order, skipping those that already succeeded",
)
@click.option("--graph", required=True, metavar="URI", help="quantum graph: a local path or an s3:// URI")
@click.option(
    "--config", metavar="LOCATION", required=True, help="repository config: a local file or an s3:// URI"
)
@click.option("-j", "--jobs", metavar="N", type=int, help="quanta running at once (default: CPUs usable)")
@click.option("--executor", type=click.Choice(("local", "dask")), default="local", help="where quanta run")
@click.option("--scheduler", metavar="ADDR", help="Dask scheduler address (with --executor dask)")
@click.option("--rerun", is_flag=True, help="run quanta that already succeeded again")
@json_option("print the outcome of each quantum as JSON")
@global_options
def run(
    graph: str,
    config: str,
    jobs: int | None,
    executor: str,
    scheduler: str | None,
    rerun: bool,
    as_json: bool,
) -> int:
    """Run a graph here or on Dask; print one line per quantum and a summary (or JSON)."""
    from ..provenance.files import redact

    if jobs is not None and jobs < 1:
        print("s3qbb run: -j must be at least 1.", file=sys.stderr)
        return EXIT_USAGE
    try:
        if executor == "dask":
            return _run_dask(graph, config, scheduler=scheduler, rerun=rerun, as_json=as_json)
        if scheduler:
            print("s3qbb run: --scheduler needs --executor dask.", file=sys.stderr)
            return EXIT_USAGE
        return _run_local(graph, config, jobs=jobs, rerun=rerun, as_json=as_json)
    except S3qbbError as err:
        from ..batch.exitcodes import exit_code_for_error

        print(f"s3qbb run: {redact(str(err))}", file=sys.stderr)
        return int(exit_code_for_error(err, in_task=False))  # storage unreachable: 75, as run-quantum


def _run_local(graph: str, config: str, *, jobs: int | None, rerun: bool, as_json: bool) -> int:
    from ..batch.local import QuantumRun, default_jobs, run_graph, summary_exit_code

    logging_options = current_global_options()
    json_log = logging_options.log_format == "json"

    def progress(run: QuantumRun, done: int, total: int) -> None:
        code = "" if run.exit_code is None else f", exit {run.exit_code}, {run.duration_s:.1f} s"
        line = f"[{done}/{total}] {run.index:>5} {run.node.label} {run.node.id}: {run.status}{code}"
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)
        if run.stderr_tail and json_log:  # one JSON object a line: the tail goes in a log record
            logging.getLogger("s3qbb.batch.local").warning(
                "Quantum %s (%s, index %d) exited %s; the end of its log:\n%s",
                run.node.id, run.node.label, run.index, run.exit_code, run.stderr_tail,
            )  # fmt: skip
        elif run.stderr_tail:
            print("        " + run.stderr_tail.replace("\n", "\n        "), file=sys.stderr, flush=True)

    summary = run_graph(
        graph,
        config,
        jobs=default_jobs() if jobs is None else jobs,
        rerun=rerun,
        on_result=progress,
        verbose=logging_options.verbose,
        log_format=logging_options.log_format,
        log_file=logging_options.log_file,
    )
    code = summary_exit_code(summary)
    counts: dict[str, int] = {}
    for r in summary.runs.values():
        counts[r.status] = counts.get(r.status, 0) + 1
    if as_json:
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
        print(f"graph {graph}: {text} in {summary.elapsed_s:.1f} s; exit {code}")
    return code


def _run_dask(graph_uri: str, config: str, *, scheduler: str | None, rerun: bool, as_json: bool) -> int:
    from ..batch.dask import _import_distributed, run_graph_on_dask
    from ..batch.exitcodes import ExitCode, run_exit_code
    from ..batch.graph import QuantumGraph
    from .options import load_config_option

    if not scheduler:
        print("s3qbb run: --executor dask needs --scheduler ADDR.", file=sys.stderr)
        return EXIT_USAGE
    distributed = _import_distributed()
    repo = load_config_option(config)
    graph = QuantumGraph.load(graph_uri, config=repo.datastore.endpoint_config())
    try:
        client = distributed.Client(scheduler)
    except OSError as err:  # refused or timed out: the cluster may come up, so retryable
        print(
            f"s3qbb run: cannot reach the Dask scheduler at {scheduler} ({err}); check the address "
            "and that the scheduler is running, then run again.",
            file=sys.stderr,
        )
        return int(ExitCode.TEMPFAIL)
    from ..batch.signals import GracefulTermination, JobInterrupted, grace_period

    # SIGTERM or SIGINT stops the wait for the results: the quanta not started yet are cancelled with
    # the client, the running ones end on their workers (each uploads its records); run again to resume.
    with GracefulTermination(grace_period()) as termination:
        try:
            with client:
                results = run_graph_on_dask(graph, repo, client=client, rerun=rerun)
        except JobInterrupted as err:
            code = int(err.exit_code)
            termination.done(code)
            message = (
                f"s3qbb run: stopped by {signal.Signals(err.signum).name}: the quanta not started are "
                "cancelled, those running end on their workers; run the graph again to resume."
            )
            print(message, file=sys.stderr)
            if as_json:
                print(json.dumps({"exit_code": code, "interrupted": signal.Signals(err.signum).name}))
            return code
    counts: dict[str, int] = {}
    for r in results.values():
        counts[r.status] = counts.get(r.status, 0) + 1
    code = run_exit_code(r.exit_code for r in results.values() if not r.succeeded)  # as the local executor
    if as_json:
        rows = [
            {"id": str(r.quantum_id), "label": r.task_label, "status": r.status, "exit_code": r.exit_code}
            for r in results.values()
        ]
        print(json.dumps({"exit_code": code, "counts": counts, "quanta": rows}, indent=1))
    else:
        for r in results.values():
            print(f"{r.task_label} {r.quantum_id}: {r.status}" + (f" ({r.error})" if r.error else ""))
        text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"graph {graph_uri}: {text} on {scheduler}; exit {code}")
    return code
