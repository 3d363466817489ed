"""Run a whole quantum graph on this machine: N worker processes, dependency order, resumable.

`run_graph` starts each quantum as its own ``s3qbb run-quantum --graph G
--index I`` subprocess, at most ``jobs`` at a time, once every quantum
producing its inputs has succeeded. Quanta downstream of a failure are not
run (``upstream-failed``); independent quanta go on.

Why subprocesses rather than a process pool calling the job function: each
quantum then runs exactly as a batch job runs it (the same entry point,
exit codes, signal handling, records upload and retry check), a task that
crashes, leaks memory or changes global state cannot harm the next quantum,
and a runner killed with its workers leaves nothing half-owned in memory.
The price is one interpreter start and the imports per quantum (see
``make bench``: the Dask executor keeps warm workers and is the choice for
many small quanta).

Resuming is running again: before starting, one LIST per run of the
``_records`` folders (`~s3qbb.batch.status.graph_status`) tells which
quanta already succeeded; they are skipped and their outputs are read by
their consumers through their provenance files.
"""

from __future__ import annotations

__all__ = ["LocalRunSummary", "QuantumRun", "run_graph", "summary_exit_code"]

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .graph import GraphNode

_LOG = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_TEMPFAIL = 75
_RETRYABLE = {EXIT_TEMPFAIL, 128 + signal.SIGTERM, 128 + signal.SIGINT}


@dataclass(frozen=True, slots=True)
class QuantumRun:
    """How one quantum ended in a local run."""

    index: int
    """Index in the graph."""
    node: GraphNode
    """The graph's node of the quantum."""
    status: str
    """``succeeded``, ``already succeeded``, ``failed`` (exit code 1), ``error`` (other non-zero exit code),
    ``interrupted``, ``upstream-failed`` or ``not run`` (the runner was stopped first)."""
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

    A runner stopped by a signal returns 128 + the signal (143 SIGTERM, 130 SIGINT).
    """
    if summary.interrupted_by is not None:
        return 128 + summary.interrupted_by
    codes = {r.exit_code for r in summary.runs.values() if r.status not in ("succeeded", "already succeeded")}
    if not codes:
        return EXIT_OK
    if codes <= _RETRYABLE | {None} and codes - {None}:
        return EXIT_TEMPFAIL
    return EXIT_FAILED


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
    processes: dict[int, subprocess.Popen[str]] = {}
    lock = threading.Lock()
    stop = threading.Event()
    base_cmd = [sys.executable, "-m", "s3qbb.cli", "run-quantum", "--graph", graph_uri, "--config", config]

    def run_one(index: int) -> QuantumRun:
        node = graph.nodes[index]
        t0 = time.monotonic()
        with lock:
            if stop.is_set():
                return QuantumRun(index, node, "not run")
            proc = subprocess.Popen(
                [*base_cmd, "--index", str(index), *extra_args],
                env=dict(env) if env is not None else None,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            processes[index] = proc
        _, stderr = proc.communicate()
        with lock:
            processes.pop(index, None)
        code = proc.returncode
        status = {0: "succeeded", 1: "failed"}.get(code, "error")
        if code in (128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT):
            status = "interrupted"
        tail = "" if code == 0 else "\n".join(stderr.strip().splitlines()[-5:])
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
                    if any(u in summary.runs and summary.runs[u].status not in ok for u in node.upstream):
                        record(QuantumRun(node.index, node, "upstream-failed"))
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
    for node in graph.nodes:
        if node.index not in summary.runs:
            summary.runs[node.index] = QuantumRun(node.index, node, "not run")
    summary.elapsed_s = time.monotonic() - started_at
    _LOG.info("Ran graph %s: %d processes in %.1f s.", graph_uri, summary.started, summary.elapsed_s)
    return summary


def default_jobs() -> int:
    """Return the default number of worker processes: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
