"""How far a quantum graph has run: per quantum, succeeded / failed / interrupted / running / not run.

`graph_status` lists each run's ``<run>/_records/`` prefix once (one LIST per
1,000 files, attempt leases included) and reads the execution report
(``<qid>.quantum.json``, one GET, in parallel) only of the graph's quanta
that have one: the report holds the status. A quantum without a report but
with an attempt lease (``_records/_attempts/``, `s3qbb.batch.attempts`)
started: its newest lease is read (one GET, in parallel with the reports),
and the quantum is ``running`` while that attempt runs (by the rule a retry
follows, `~s3qbb.batch.attempts.lease_alive`), ``incomplete`` otherwise (the
attempt died, e.g. its job was killed, or ended without uploading its
report). Quanta without any file have not run; quanta with a provenance or
records file but no readable report were stopped while uploading, or re-run
on purpose by an attempt that did not finish, or have a damaged report
(``incomplete``: run them again, or ``s3qbb ingest --recover``).
"""

from __future__ import annotations

__all__ = ["INCOMPLETE", "NOT_RUN", "RUNNING", "QuantumState", "graph_status", "status_counts"]

import json
import uuid
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import DatasetIntegrityError, DatasetNotFoundError, InvalidNameError, RecordDataError
from .attempts import lease_alive

if TYPE_CHECKING:
    from ..repo import RepoConfig
    from .graph import QuantumGraph

NOT_RUN = "not run"
"""Status of a quantum that has left no file: no attempt of it started."""
RUNNING = "running"
"""Status of a quantum without a report whose newest attempt is running (its lease is held)."""
INCOMPLETE = "incomplete"
"""Status of a quantum that has left files or an attempt lease but no readable execution report.

Its upload was cut short, its attempt died (a killed job) or its report is damaged: run it again,
or ``s3qbb ingest --recover`` its run."""
_AGAIN = "run the quantum again, or `s3qbb ingest --recover` its run"


@dataclass(frozen=True, slots=True)
class QuantumState:
    """The state of one quantum of a graph."""

    index: int
    """Index in the graph."""
    quantum_id: uuid.UUID
    """Quantum ID."""
    label: str
    """Task label."""
    status: str
    """``succeeded``, ``failed``, ``interrupted``, ``recovered`` (from the report), ``running``,
    ``incomplete`` or ``not run``."""
    error: str | None = None
    """The report's error, ``"Type: message"``; for ``incomplete``, what is missing and what to do."""

    @property
    def succeeded(self) -> bool:
        """Whether the quantum's last attempt succeeded."""
        return self.status == "succeeded"


def graph_status(graph: QuantumGraph, repo: RepoConfig, *, max_workers: int = 16) -> list[QuantumState]:
    """Return the state of every quantum of the graph, in the graph's order.

    Parameters
    ----------
    graph : `~s3qbb.batch.graph.QuantumGraph`
        The graph.
    repo : `~s3qbb.repo.RepoConfig`
        The repository the graph runs in.
    max_workers : `int`, optional
        Concurrent GETs (reports, and leases of quanta without a report).

    Returns
    -------
    states : `list` [`QuantumState`]
        One per quantum.
    """
    from ..provenance.files import (
        attempt_key,
        parse_attempt_name,
        parse_records_key,
        records_prefix,
        report_key,
    )
    from ..provenance.report import QuantumExecutionReport
    from .upstream import repo_bucket

    bucket, prefix = repo_bucket(repo)
    wanted = {node.id for node in graph.nodes}
    kinds: dict[uuid.UUID, set[str]] = {}
    newest: dict[uuid.UUID, str] = {}  # quantum ID -> its newest attempt with a lease (IDs sort by time)
    for run in sorted({node.run for node in graph.nodes if node.run is not None}):
        run_prefix = f"{prefix}{records_prefix(run)}"
        for page in bucket.list_keys(run_prefix):
            for key in page:
                attempt = parse_attempt_name(key[len(run_prefix) :])
                if attempt is not None:
                    qid, attempt_id = attempt
                    if qid in wanted and attempt_id > newest.get(qid, ""):
                        newest[qid] = attempt_id
                    continue
                try:
                    kind, qid = parse_records_key(key[len(prefix) :])
                except InvalidNameError:
                    continue
                if qid in wanted:
                    kinds.setdefault(qid, set()).add(kind)

    def read(index: int) -> QuantumState:
        node = graph.nodes[index]
        if "report" not in kinds.get(node.id, set()):
            return read_lease(index)
        key = f"{prefix}{report_key(node.run or '', node.id)}"
        try:
            report = QuantumExecutionReport.from_json(bucket.get_checked(key).body, source=bucket.uri(key))
        except (DatasetNotFoundError, DatasetIntegrityError, RecordDataError) as err:
            # Withdrawn meanwhile by a re-run, or damaged: nothing vouches for the quantum's outputs.
            why = "gone since it was listed" if isinstance(err, DatasetNotFoundError) else str(err)
            return QuantumState(index, node.id, node.label, INCOMPLETE, f"report {bucket.uri(key)}: {why}")
        error = f"{report.error.type}: {report.error.message}" if report.error is not None else None
        return QuantumState(index, node.id, node.label, str(report.status), error)

    def read_lease(index: int) -> QuantumState:
        # A quantum that left a lease but no report: its newest attempt runs, or it left no report.
        node = graph.nodes[index]
        attempt_id = newest[node.id]
        key = f"{prefix}{attempt_key(node.run or '', node.id, attempt_id)}"
        try:
            lease = json.loads(bucket.get_checked(key).body)
            if not isinstance(lease, dict):
                raise ValueError("not a JSON object")
        except DatasetNotFoundError:
            why = f"its lease {bucket.uri(key)} is gone since it was listed"
        except (ValueError, UnicodeDecodeError, DatasetIntegrityError) as err:
            why = f"its lease {bucket.uri(key)} is unreadable ({err})"
        else:
            state = lease.get("state")
            alive, where = lease_alive(lease)
            if state != "running":
                where = f"host {lease.get('host')}, pid {lease.get('pid')}"
                why = f"it ended {state!r} ({where}) without uploading its report"
            elif not alive:
                why = f"it died ({where})"
            else:
                return QuantumState(index, node.id, node.label, RUNNING)
        return QuantumState(
            index,
            node.id,
            node.label,
            INCOMPLETE,
            f"attempt {attempt_id} started and left no report: {why}; {_AGAIN}",
        )

    states: dict[int, QuantumState] = {}
    to_read = []
    for node in graph.nodes:
        found = kinds.get(node.id, set())
        if "report" in found or node.id in newest:
            to_read.append(node.index)
        else:
            states[node.index] = QuantumState(
                node.index, node.id, node.label, INCOMPLETE if found else NOT_RUN
            )
    if to_read:
        with ThreadPoolExecutor(min(max_workers, len(to_read)), thread_name_prefix="s3qbb-status") as pool:
            for state in pool.map(read, to_read):
                states[state.index] = state
    return [states[i] for i in range(len(graph))]


def status_counts(states: list[QuantumState]) -> Mapping[str, int]:
    """Count quanta by status."""
    return dict(Counter(state.status for state in states))
