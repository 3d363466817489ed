"""Run the quanta of a pipeline on a Dask cluster, one `~s3qbb.batch.execution.run_quantum` per quantum.

`run_pipeline_on_dask` submits one Dask task per quantum. A quantum depends
on the quanta producing its inputs (matched by dataset ID), so it starts only
once they have succeeded, and it receives the datastore records of their
outputs without any request to S3. Quanta downstream of a failure are not run
and are reported as ``upstream-failed``; independent quanta go on.

Quanta run *in the worker processes*, not as ``s3qbb run-quantum``
subprocesses: a quantum then costs no interpreter start and no imports
(about 1 CPU-second per quantum in a subprocess, most of the client CPU of
small quanta, see :doc:`/scale`), and the S3 client and its connections are
reused from one quantum to the next. The price is isolation: a task that
leaks memory or changes global state does so in a long-lived worker, and a
worker that dies (out of memory, a crash in native code) makes Dask run its
quantum again elsewhere. Each quantum runs as ``s3qbb run-quantum`` runs it:
it is not run again if an earlier attempt succeeded (one GET), and its attempt
keeps a lease, so that it never replaces what a running or successful attempt
wrote (see :doc:`/batch`); tasks that need isolation belong in batch jobs.

Dask is an optional dependency: install the ``dask`` extra
(``pip install 's3qbb[dask]'``).
"""

from __future__ import annotations

__all__ = ["DaskUnavailableError", "QuantumResult", "TaskSpec", "run_graph_on_dask", "run_pipeline_on_dask"]

import graphlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, S3qbbError
from .execution import EXIT_INFRASTRUCTURE_FAILURE, EXIT_SUCCESS, EXIT_USAGE, TaskFunction, load_task

if TYPE_CHECKING:
    from types import ModuleType

    from distributed import Client

    from ..butler.quantum_backed import QuantumBackedButler
    from ..core.quantum import Quantum
    from ..core.records import DatastoreRecordData
    from ..repo import RepoConfig
    from .graph import QuantumGraph

TaskSpec = TaskFunction | str
"""A task function, or where to import it from (``"package.module:function"``)."""

_EXTRA_HINT = "install the 'dask' extra: pip install 's3qbb[dask]'"


class DaskUnavailableError(S3qbbError, ImportError):
    """Dask (``dask.distributed``) is not installed; the message names the extra to install."""


@dataclass(frozen=True)
class QuantumResult:
    """How one quantum ended on the cluster (plain data: it travels back from the workers)."""

    quantum_id: uuid.UUID
    """ID of the quantum."""
    task_label: str | None
    """Label of its task."""
    status: str
    """``succeeded`` or ``failed`` (its files were uploaded with that status); ``not-started`` (the
    butler could not be built); ``upstream-failed`` (not run: a quantum producing its inputs did not
    succeed); ``lost`` (its Dask task itself failed, e.g. the worker died too often)."""
    exit_code: int | None
    """The exit code `s3qbb run-quantum` would have returned; `None` when the quantum was not run."""
    uploaded: tuple[str, ...] = ()
    """URIs of the records, provenance and report files uploaded."""
    error: str | None = None
    """The error, as ``"Type: message"`` with credentials redacted."""
    missing_inputs: tuple[str, ...] = ()
    """Predicted inputs found missing before the task ran."""
    records: Mapping[str, DatastoreRecordData] = field(default_factory=dict)
    """Datastore records of the outputs written, by datastore name (handed to downstream quanta)."""
    worker: str = ""
    """``host:pid`` of the process that ran it."""
    duration_s: float = 0.0
    """Seconds the quantum took in its worker."""

    def __post_init__(self) -> None:
        # A plain dict, so that a result pickles (process pools, Dask) whatever mapping was given.
        object.__setattr__(self, "records", dict(self.records))

    @property
    def succeeded(self) -> bool:
        """Whether the quantum succeeded and its files were uploaded."""
        return self.exit_code == EXIT_SUCCESS


def _import_distributed() -> ModuleType:
    try:
        import distributed
    except ImportError as err:
        raise DaskUnavailableError(
            f"Running quanta on Dask needs dask.distributed, which cannot be imported ({err}); {_EXTRA_HINT}."
        ) from err
    return distributed


def _merged_records(quantum: Quantum, upstream: Iterable[QuantumResult]) -> Quantum:
    """Return the quantum with the records of its producers' outputs added to its own."""
    return quantum.with_datastore_records(*(result.records for result in upstream))


def _run_one(
    repo: RepoConfig,
    description: str,
    task_spec: TaskSpec,
    require_inputs: bool,
    rerun: bool,
    *upstream: QuantumResult,
) -> QuantumResult:
    """Run one quantum in a worker (a Dask task: it returns its outcome and never raises).

    The quantum runs as ``s3qbb run-quantum`` runs it (`s3qbb.batch.job.run_job`, signals left to
    the worker): one GET tells whether an earlier attempt already succeeded (a worker that died
    after the uploads, and Dask ran the quantum again), and the attempt keeps a lease, so that it
    never replaces what a running or successful attempt wrote.
    """
    from ..redaction import redact
    from .execution import load_quantum, outcome_summary
    from .job import JobOptions, run_job

    started = time.monotonic()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    quantum = load_quantum(description.encode(), repo.universe())

    def result(status: str, exit_code: int | None, error: str | None, **more: Any) -> QuantumResult:
        return QuantumResult(
            quantum.id, quantum.taskLabel, status, exit_code, error=error, worker=worker,
            duration_s=time.monotonic() - started, **more,
        )  # fmt: skip

    failed = [r for r in upstream if not r.succeeded]
    if failed:
        return result(
            "upstream-failed",
            None,
            f"{len(failed)} quantum(s) producing its inputs did not succeed, e.g. {failed[0].quantum_id} "
            f"({failed[0].task_label}: {failed[0].status})",
        )
    try:
        task = load_task(task_spec) if isinstance(task_spec, str) else task_spec
    except ConfigError as err:
        return result("not-started", EXIT_USAGE, redact(f"{type(err).__name__}: {err}"))
    if upstream:
        quantum = _merged_records(quantum, upstream)
    butlers: list[QuantumBackedButler] = []

    def task_with_butler(butler: QuantumBackedButler, q: Quantum) -> Any:
        butlers.append(butler)  # kept to read the records of the outputs afterwards
        return task(butler, q)

    options = JobOptions(rerun=rerun, require_inputs=require_inputs, handle_signals=False)
    job = run_job(repo, quantum, task_with_butler, options)
    if job.previous is not None:
        try:
            records = _records_of_success(repo, quantum)
        except Exception as err:  # a Dask task returns its outcome, it never raises
            return result("failed", EXIT_INFRASTRUCTURE_FAILURE, redact(f"{type(err).__name__}: {err}"))
        return result("already succeeded", EXIT_SUCCESS, None, records=records)
    if job.outcome is None:
        return result("not-started", int(job.exit_code), None)
    summary = outcome_summary(job.outcome)
    # After finish() the butler returns its provenance from memory: no request, no reopened datastore.
    # An attempt stopped by another one (exit 75) closed its butler without finishing: no records.
    finish = job.outcome.finish
    finished = butlers and finish is not None and finish.status not in ("skipped", "upload-failed")
    records = butlers[0].extract_provenance_data().datastore_record_data() if finished else {}
    return result(
        summary["status"],
        job.outcome.exit_code,
        summary["error"],
        uploaded=tuple(summary["uploaded"]),
        missing_inputs=job.outcome.missing_inputs,
        records=records,
    )


def _records_of_success(repo: RepoConfig, quantum: Quantum) -> dict[str, DatastoreRecordData]:
    """Return the records of the outputs of an earlier successful attempt, from its provenance file."""
    from ..butler.setup import single_run
    from ..provenance.files import provenance_key
    from ..provenance.model import QuantumProvenanceData
    from .upstream import repo_bucket

    run = single_run(quantum.output_refs())
    if run is None:  # not reached: a quantum without a single run has no report to find
        return {}
    bucket, prefix = repo_bucket(repo)
    key = prefix + provenance_key(run, quantum.id)
    provenance = QuantumProvenanceData.from_json(bucket.get_checked(key).body, source=bucket.uri(key))
    return dict(provenance.datastore_record_data())


def _dependencies(quanta: list[Quantum]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Map each quantum ID to the IDs of the quanta producing its inputs, in topological order."""
    producers: dict[uuid.UUID, uuid.UUID] = {}
    for quantum in quanta:
        for ref in quantum.output_refs():
            other = producers.setdefault(ref.id, quantum.id)
            if other != quantum.id:
                raise ConfigError(
                    f"Dataset {ref} is an output of two quanta, {other} and {quantum.id}; "
                    "each dataset must have a single producer."
                )
    deps: dict[uuid.UUID, list[uuid.UUID]] = {}
    for quantum in quanta:
        if quantum.id in deps:
            raise ConfigError(f"Quantum {quantum.id} appears twice in the graph.")
        found = {producers[r.id] for r in quantum.input_refs() if r.id in producers} - {quantum.id}
        deps[quantum.id] = sorted(found)
    try:
        order = list(graphlib.TopologicalSorter(deps).static_order())
    except graphlib.CycleError as err:
        raise ConfigError(f"The quanta form a cycle through their datasets: {err.args[1]}.") from None
    return {qid: deps[qid] for qid in order}


def run_pipeline_on_dask(
    quanta: Iterable[Quantum],
    task_for: Mapping[str, TaskSpec] | Callable[[Quantum], TaskSpec],
    config: RepoConfig | Mapping[str, Any] | str | os.PathLike[str],
    *,
    client: Client | None = None,
    require_inputs: bool = True,
    rerun: bool = False,
) -> dict[uuid.UUID, QuantumResult]:
    """Run a pipeline's quanta on a Dask cluster and return how each ended.

    One Dask task per quantum calls `s3qbb.batch.execution.run_quantum` in a worker
    process. A quantum runs after the quanta producing its inputs (matched by
    dataset ID) and gets their output records from them; it is not run if one
    of them did not succeed. The call returns when every quantum has ended.

    Parameters
    ----------
    quanta : `~collections.abc.Iterable` [`~s3qbb.core.quantum.Quantum`]
        The quantum graph: quanta whose inputs are either outputs of other
        quanta of the graph or already stored (with their datastore records
        in the quantum).
    task_for : `~collections.abc.Mapping` [`str`, `TaskSpec`] or `~collections.abc.Callable`
        The task of each quantum: a mapping from task label, or a function of
        the quantum. A task is a function ``task(butler, quantum)`` (sent to
        the workers by pickling) or a ``"package.module:function"`` string
        (imported by the workers).
    config : `~s3qbb.repo.RepoConfig`, mapping, `str` or `os.PathLike`
        Repository configuration, read once here and sent to the workers.
        Credentials in it travel with each task; prefer credentials from the
        workers' environment.
    client : `distributed.Client`, optional
        The cluster's client; the current default client if not given.
    require_inputs : `bool`, optional
        Fail a quantum (infrastructure failure, task not called) whose
        predicted inputs are missing.
    rerun : `bool`, optional
        Run quanta that already succeeded again, their outputs and records
        replaced (``s3qbb run-quantum --rerun``); by default such a quantum
        is not run again (status ``already succeeded``, one GET).

    Returns
    -------
    results : `dict` [`uuid.UUID`, `QuantumResult`]
        By quantum ID, in the order the quanta were given.

    Raises
    ------
    DaskUnavailableError
        If ``dask.distributed`` is not installed (install the ``dask`` extra).
    ConfigError
        If the configuration is invalid, a quantum has no task, a dataset has
        two producers, or the quanta form a cycle.

    Examples
    --------
    On a two-worker local cluster::

        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
            results = run_pipeline_on_dask(
                quanta, {"calibrate": "s3qbb.demo:calibrate"}, "butler.yaml", client=client
            )
        failed = [r for r in results.values() if not r.succeeded]
    """
    distributed = _import_distributed()
    from ..core.wire import quantum_to_simple
    from ..redaction import redact
    from ..repo import load_repo_config

    quanta = list(quanta)
    repo = load_repo_config(config)
    specs: dict[uuid.UUID, TaskSpec] = {}
    for quantum in quanta:
        label = quantum.taskLabel or ""
        if isinstance(task_for, Mapping):
            if label not in task_for:
                raise ConfigError(
                    f"No task for quantum {quantum.id} (label {label!r}); task_for knows {sorted(task_for)}."
                )
            specs[quantum.id] = task_for[label]
        else:
            specs[quantum.id] = task_for(quantum)
    deps = _dependencies(quanta)
    by_id = {q.id: q for q in quanta}
    if client is None:
        client = distributed.get_client()
    token = uuid.uuid4().hex[:8]  # distinct Dask keys if the same graph is submitted twice
    futures: dict[uuid.UUID, Any] = {}
    for qid, upstream in deps.items():
        quantum = by_id[qid]
        futures[qid] = client.submit(
            _run_one,
            repo,
            quantum_to_simple(quantum).model_dump_json(),
            specs[qid],
            require_inputs,
            rerun,
            *(futures[u] for u in upstream),
            key=f"s3qbb-quantum-{quantum.taskLabel or 'task'}-{qid}-{token}",
            pure=False,
            retries=0,
        )
    results: dict[uuid.UUID, QuantumResult] = {}
    for qid in deps:  # topological order: the producers' results are known first
        try:
            results[qid] = futures[qid].result()
        except Exception as err:  # the Dask task itself failed (a worker died too often)
            blocked = [u for u in deps[qid] if not results[u].succeeded]
            status = "upstream-failed" if blocked else "lost"
            results[qid] = QuantumResult(
                qid,
                by_id[qid].taskLabel,
                status,
                None if blocked else EXIT_INFRASTRUCTURE_FAILURE,
                error=redact(f"{type(err).__name__}: {err}"),
            )
    futures.clear()
    return {q.id: results[q.id] for q in quanta}


def run_graph_on_dask(
    graph: QuantumGraph,
    config: RepoConfig | Mapping[str, Any] | str | os.PathLike[str],
    *,
    client: Client | None = None,
    require_inputs: bool = True,
    rerun: bool = False,
) -> dict[uuid.UUID, QuantumResult]:
    """Run the quanta of a `~s3qbb.batch.graph.QuantumGraph` on Dask (see `run_pipeline_on_dask`).

    The tasks are the graph's (``"package.module:function"``, imported by the
    workers). As with ``s3qbb run``, quanta whose last attempt succeeded are
    not run again (status ``already succeeded``): one LIST per run tells which
    (`~s3qbb.batch.status.graph_status`), and the quanta reading their outputs
    get those records from their provenance files, here, before submission.

    Parameters
    ----------
    graph : `~s3qbb.batch.graph.QuantumGraph`
        The graph.
    config : `~s3qbb.repo.RepoConfig`, mapping, `str` or `os.PathLike`
        Repository configuration.
    client : `distributed.Client`, optional
        The cluster's client; the current default client if not given.
    require_inputs : `bool`, optional
        Fail a quantum whose predicted inputs are missing.
    rerun : `bool`, optional
        Run every quantum, even those that already succeeded.

    Returns
    -------
    results : `dict` [`uuid.UUID`, `QuantumResult`]
        By quantum ID, in the graph's order.
    """
    from ..repo import load_repo_config
    from .status import graph_status
    from .upstream import with_upstream_records

    repo = load_repo_config(config)
    done = set() if rerun else {s.index for s in graph_status(graph, repo) if s.succeeded}
    todo = []
    for node in graph.nodes:
        if node.index in done:
            continue
        ready = [u for u in node.upstream if u in done]
        todo.append(
            with_upstream_records(graph, node.index, repo, only=ready) if ready else graph[node.index]
        )
    tasks: dict[str, TaskSpec] = dict(graph.tasks)
    ran = (
        run_pipeline_on_dask(todo, tasks, repo, client=client, require_inputs=require_inputs, rerun=rerun)
        if todo
        else {}
    )
    results: dict[uuid.UUID, QuantumResult] = {}
    for node in graph.nodes:
        if node.index in done:
            results[node.id] = QuantumResult(node.id, node.label, "already succeeded", EXIT_SUCCESS)
        else:
            results[node.id] = ran[node.id]
    return results
