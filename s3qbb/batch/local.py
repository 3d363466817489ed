"""Run a whole quantum graph on this machine: N worker processes, dependency order, resumable.

`run_graph` runs each quantum as ``s3qbb run-quantum --graph G --index I``
in a process of its own, at most ``jobs`` at a time, once every quantum
producing its inputs has succeeded. Quanta downstream of a failure are not
run (``upstream-failed``); independent quanta go on.

One process per quantum: each quantum runs exactly as one batch job runs it
(the same entry point, exit codes, signal handling, records upload and retry
check), a task that crashes, leaks memory or changes global state cannot harm
the next quantum, and a runner killed with its workers leaves nothing
half-owned in memory. By default the processes are forked from a fork server
that imported s3qbb's job modules once (`s3qbb.batch.workers`): a quantum then
skips the interpreter start and imports, most of a small quantum's cost;
``start_method="subprocess"`` starts a new interpreter per quantum instead.

Logging: the runner's ``-v``, ``--log-format`` and ``--log-file`` are passed
to every quantum. With ``--log-file PATH`` every quantum appends to the same
file (each line names its quantum ID and task label, in text and JSON alike),
so one file holds the whole run in the order things happened.

Resuming is running again: before starting, one LIST per run of the
``_records`` folders (`~s3qbb.batch.status.graph_status`) tells which
quanta already succeeded; they are skipped and their outputs are read by
their consumers through their provenance files.
"""

from __future__ import annotations

__all__ = ["LocalRunSummary", "QuantumRun", "run_graph", "summary_exit_code"]

import contextlib
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from .workers import ForkServer, StartMethod, default_start_method, preload_modules, start_subprocess

if TYPE_CHECKING:
    from .graph import GraphNode
    from .workers import QuantumProcess

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QuantumRun:
    """How one quantum ended in a local run."""

    index: int
    """Index in the graph."""
    node: GraphNode
    """The graph's node of the quantum."""
    status: str
    """``succeeded``, ``already succeeded``, ``failed`` (exit code 1), ``error`` (other non-zero exit code),
    ``interrupted``, ``upstream-failed`` or ``not run`` (the runner was stopped before it started, or a
    quantum producing its inputs was stopped)."""
    exit_code: int | None = None
    """Exit code of its ``run-quantum`` process (`None` if none was started)."""
    duration_s: float = 0.0
    """Seconds its process ran."""
    stderr_tail: str = ""
    """Last lines of the process's standard error, when it failed."""


@dataclass
class LocalRunSummary:
    """The outcome of `run_graph`."""

    runs: dict[int, QuantumRun] = field(default_factory=dict)
    """By index in the graph."""
    interrupted_by: int | None = None
    """The signal that stopped the runner, if any."""
    elapsed_s: float = 0.0
    """Seconds the run took."""

    def count(self, status: str) -> int:
        """Return how many quanta ended with this status."""
        return sum(1 for r in self.runs.values() if r.status == status)

    @property
    def started(self) -> int:
        """How many ``run-quantum`` processes were started."""
        return sum(1 for r in self.runs.values() if r.exit_code is not None)


def summary_exit_code(summary: LocalRunSummary) -> int:
    """Return the runner's exit code: 0 all succeeded, 1 a quantum failed, 75 only retryable failures.

    A runner stopped by a signal returns 128 + the signal (143 SIGTERM, 130
    SIGINT). The rule is `~s3qbb.batch.exitcodes.run_exit_code`'s, shared
    with the Dask executor.
    """
    from .exitcodes import run_exit_code

    failures = (
        r.exit_code for r in summary.runs.values() if r.status not in ("succeeded", "already succeeded")
    )
    return run_exit_code(failures, interrupted_by=summary.interrupted_by)


def run_graph(
    graph_uri: str,
    config: str,
    *,
    jobs: int = 1,
    rerun: bool = False,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    on_result: Callable[[QuantumRun, int, int], None] | None = None,
    handle_signals: bool = True,
    verbose: int = 0,
    log_format: str | None = None,
    log_file: str | os.PathLike[str] | None = None,
    start_method: StartMethod | None = None,
) -> LocalRunSummary:
    """Run every quantum of a graph that has not succeeded yet, ``jobs`` processes at a time.

    Parameters
    ----------
    graph_uri : `str`
        The graph: a local path or an ``s3://`` URI (read by the runner and by each process).
    config : `str`
        The repository configuration: a local path or an ``s3://`` URI.
    jobs : `int`, optional
        Quanta running at once.
    rerun : `bool`, optional
        Run every quantum again, even those that already succeeded.
    extra_args : `~collections.abc.Sequence` [`str`], optional
        More ``run-quantum`` arguments (``--records-file`` is not allowed: processes run at once).
    env : `~collections.abc.Mapping`, optional
        Environment of the processes; this process's by default.
    on_result : `~collections.abc.Callable`, optional
        Called with each quantum's `QuantumRun`, the number ended so far and the total.
    handle_signals : `bool`, optional
        On SIGTERM/SIGINT (main thread only), start nothing more, pass the signal to the running
        processes (which upload their records as ``interrupted``) and wait for them.
    verbose : `int`, optional
        ``-v`` count passed to every quantum.
    log_format : {"text", "json"}, optional
        ``--log-format`` of every quantum (their default, text, if not given).
    log_file : `str` or `os.PathLike`, optional
        ``--log-file`` of every quantum: each appends its log to this one file.
    start_method : {"forkserver", "subprocess"}, optional
        How each quantum's process is started (`s3qbb.batch.workers`);
        ``forkserver`` where the platform has it by default.

    Returns
    -------
    summary : `LocalRunSummary`
        How each quantum ended.

    Raises
    ------
    ConfigError
        If the configuration or the graph cannot be read.
    """
    from ..repo import load_repo_config
    from .graph import QuantumGraph
    from .status import graph_status

    started_at = time.monotonic()
    jobs = max(1, jobs)
    repo = load_repo_config(config)
    # The runner needs the header only (the quanta are read by their processes).
    graph = QuantumGraph.open(graph_uri, config=repo.datastore.endpoint_config())
    summary = LocalRunSummary()
    total = len(graph)

    def record(run: QuantumRun) -> None:
        summary.runs[run.index] = run
        if on_result is not None:
            on_result(run, len(summary.runs), total)

    if not rerun:
        for state in graph_status(graph, repo):
            if state.succeeded:
                record(QuantumRun(state.index, graph.nodes[state.index], "already succeeded"))
    processes: dict[int, QuantumProcess] = {}
    lock = threading.Lock()
    stop = threading.Event()
    method = start_method or default_start_method()
    base_args = ["run-quantum", "--graph", graph_uri, "--config", config]
    base_args += _log_args(verbose, log_format, log_file)
    if rerun:  # each job then runs its task even though an earlier attempt succeeded
        base_args.append("--rerun")
    scratch = tempfile.TemporaryDirectory(prefix="s3qbb-run-")
    server: ForkServer | None = None

    def start(args: list[str], stderr_path: str) -> QuantumProcess:
        nonlocal server
        if method == "subprocess":
            return start_subprocess(args, env=env, stderr_path=stderr_path)
        if server is None:  # started with the first quantum: a run with nothing to do forks nothing
            transport = repo.datastore.endpoint_config().transport if repo.datastore.cls == "s3" else None
            server = ForkServer(preload_modules(transport), env)
        return server.start(args, stderr_path=stderr_path)

    def run_one(index: int) -> QuantumRun:
        node = graph.nodes[index]
        t0 = time.monotonic()
        stderr_path = os.path.join(scratch.name, f"{index}.stderr")
        with lock:
            if stop.is_set():
                return QuantumRun(index, node, "not run")
            proc = start([*base_args, "--index", str(index), *extra_args], stderr_path)
            processes[index] = proc
        code = proc.wait()
        with lock:
            processes.pop(index, None)
        status = {0: "succeeded", 1: "failed"}.get(code, "error")
        if code in (128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT):
            status = "interrupted"
        tail = "" if code == 0 else _tail(stderr_path)
        with contextlib.suppress(OSError):
            os.unlink(stderr_path)
        return QuantumRun(index, node, status, code, time.monotonic() - t0, tail)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        summary.interrupted_by = signum
        with lock:
            stop.set()
            for proc in processes.values():
                proc.send_signal(signum)

    previous: dict[signal.Signals, Any] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        ok = ("succeeded", "already succeeded")
        with ThreadPoolExecutor(jobs, thread_name_prefix="s3qbb-run") as pool:
            running: dict[Future[QuantumRun], int] = {}
            waiting = [node for node in graph.nodes if node.index not in summary.runs]
            while waiting or running:
                still: list[GraphNode] = []
                for node in waiting:  # in graph order: producers before consumers
                    blocked = {
                        summary.runs[u].status
                        for u in node.upstream
                        if u in summary.runs and summary.runs[u].status not in ok
                    }
                    if blocked:
                        # Nothing failed upstream of a quantum whose producers were stopped (interrupted,
                        # or never started): it was not run, as `graph status` says afterwards.
                        stopped = blocked <= {"interrupted", "not run"}
                        record(QuantumRun(node.index, node, "not run" if stopped else "upstream-failed"))
                    elif (
                        stop.is_set()
                        or len(running) >= jobs
                        or any(u not in summary.runs for u in node.upstream)
                    ):
                        still.append(node)
                    else:
                        running[pool.submit(run_one, node.index)] = node.index
                waiting = [] if stop.is_set() else still
                if running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        running.pop(fut)
                        record(fut.result())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.close()
        scratch.cleanup()
    for node in graph.nodes:
        if node.index not in summary.runs:
            summary.runs[node.index] = QuantumRun(node.index, node, "not run")
    summary.elapsed_s = time.monotonic() - started_at
    _LOG.info(
        "Ran graph %s: %d processes (%s) in %.1f s.", graph_uri, summary.started, method, summary.elapsed_s
    )
    return summary


def _log_args(verbose: int, log_format: str | None, log_file: str | os.PathLike[str] | None) -> list[str]:
    """Return the logging options of ``s3qbb run-quantum`` for the runner's own."""
    args = ["-v"] * max(0, verbose)
    if log_format is not None:
        args += ["--log-format", log_format]
    if log_file is not None:
        args += ["--log-file", os.path.abspath(os.fspath(log_file))]
    return args


def _tail(path: str, lines: int = 5) -> str:
    """Return the last lines of a quantum's standard error."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def default_jobs() -> int:
    """Return the default number of worker processes: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
