"""Recover quanta that left no usable records (killed jobs): find their outputs by listing, write their files.

A job killed with SIGKILL (out of memory, preempted, timed out) never runs
the butler's exit, so its outputs sit in S3 without the per-quantum files
that ``s3qbb ingest`` reads. `recover_quanta` takes the quantum descriptions
and, for each quantum that needs it, finds the outputs at their templated
locations (one LIST per 1,000 keys, one HEAD per output found) and writes its
records, provenance and a report with status ``recovered``. A normal ingest
then records them like any other quantum.

A quantum needs recovery when:

- it left no files, or one of its files is missing, unreadable or damaged
  (truncated JSON, a records ``.sqlite3`` that fails its checks): the
  damaged file is named in the recovered report's warnings;
- its report says ``failed`` or ``interrupted`` but outputs written by a
  later attempt of the quantum exist (their write tokens name a later
  attempt), or a ``recovered`` quantum's outputs changed since its recovery.

A quantum whose files are intact and whose report says ``succeeded`` is left
alone. What is adopted, and what is not:

- an object whose write token names another quantum is not adopted (warned);
- a placeholder of an unfinished multipart upload (metadata
  ``s3qbb-pending: 1``) is not a dataset and is not adopted (warned);
- an object's checksum is taken from s3qbb's metadata; an object without it
  (metadata lost, or written by another tool) is read once and its checksum
  computed, with a warning saying so: no record is adopted without a
  checksum, and none silently.

The recovered report's ``attempt_id`` is the newest attempt found in the
adopted objects' write tokens (`None` if they carry none), so the registry
keeps the last attempt (see :mod:`s3qbb.registry.attempts`).
"""

from __future__ import annotations

__all__ = ["PENDING_METADATA", "RecoveredQuantum", "is_graph_location", "load_quanta", "recover_quanta"]

import datetime
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..errors import ConfigError, DatasetIntegrityError
from ..redaction import redact
from ..s3.ownership import WRITE_PENDING

if TYPE_CHECKING:
    import uuid

    from ..core.dataset_ref import DatasetRef
    from ..core.dimensions import DimensionUniverse
    from ..core.quantum import Quantum
    from ..core.records import StoredFileInfo
    from ..datastores.s3 import S3Datastore
    from ..provenance.model import QuantumExecutionReport, QuantumProvenanceData
    from ..repo import RepoConfig

_LOG = logging.getLogger(__name__)

PENDING_METADATA: Final = WRITE_PENDING
"""Object metadata key (value ``"1"``) marking the placeholder of an unfinished multipart upload."""


@dataclass(frozen=True)
class RecoveredQuantum:
    """What recovery found for one quantum."""

    quantum_id: str
    status: str
    """``recovered``; ``skipped`` when the quantum's files are intact and describe its last attempt;
    ``not-run`` when it left neither files nor outputs (recovering a graph's quanta)."""
    outputs_found: int = 0
    """Outputs adopted."""
    outputs_missing: int = 0
    """Predicted outputs not adopted (absent, or refused: see ``warnings``)."""
    uploaded: tuple[str, ...] = ()
    """URIs of the files written."""
    warnings: tuple[str, ...] = ()
    """Why the quantum was recovered, what was not adopted, which checksums were computed."""


def is_graph_location(location: str | os.PathLike[str]) -> bool:
    """Tell whether ``location`` names a quantum graph rather than quantum descriptions.

    A local file is a graph if it starts with a graph file's first line; an
    ``s3://`` object is one if its name ends with ``.qgraph`` (no request).
    """
    where = os.fspath(location)
    if where.startswith("s3://"):
        return where.endswith(".qgraph")
    path = Path(where)
    if not path.is_file():
        return False
    with path.open("rb") as stream:
        return b'"s3qbb-quantum-graph"' in stream.read(128)


def load_quanta(location: str | os.PathLike[str], universe: DimensionUniverse) -> list[Quantum]:
    """Read the quanta of a graph, or every quantum description (``*.json``) of a folder or prefix.

    Parameters
    ----------
    location : `str` or `os.PathLike`
        A graph (see `is_graph_location`), a local directory or file, or an ``s3://`` prefix.
    universe : `DimensionUniverse`
        Dimensions of the descriptions (a graph carries its own).

    Raises
    ------
    ConfigError
        If the location holds no description or one is invalid.
    """
    from .execution import load_quantum

    where = os.fspath(location)
    if is_graph_location(where):
        from .graph import QuantumGraph

        return list(QuantumGraph.load(where))
    if where.startswith("s3://"):
        from ..config import S3EndpointConfig
        from ..s3.client import make_client
        from ..s3.config_files import split_s3_uri

        bucket, prefix = split_s3_uri(where.rstrip("/") + "/")
        client = make_client(S3EndpointConfig.from_env())
        keys = [
            item["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
            if item["Key"].endswith(".json")
        ]
        sources: list[str] = [f"s3://{bucket}/{k}" for k in sorted(keys)]
    else:
        path = Path(where)
        sources = [str(p) for p in sorted(path.rglob("*.json"))] if path.is_dir() else [str(path)]
    if not sources:
        raise ConfigError(f"No quantum descriptions (*.json) found at {where}.")
    return [load_quantum(source, universe) for source in sources]


def recover_quanta(
    config: RepoConfig | Mapping[str, Any] | str | os.PathLike[str],
    quanta: Iterable[Quantum],
    *,
    skip_unstarted: bool = False,
) -> list[RecoveredQuantum]:
    """Write records, provenance and a ``recovered`` report for quanta that left no usable files.

    Parameters
    ----------
    config : `RepoConfig`, mapping, `str` or `os.PathLike`
        Repository configuration (the datastore the quanta wrote to).
    quanta : iterable of `Quantum`
        Quantum descriptions, as given to ``s3qbb run-quantum``.
    skip_unstarted : `bool`, optional
        Skip quanta that left neither files nor outputs (the quanta of a graph
        that never ran) instead of recording them as recovered with every
        output missing.

    Returns
    -------
    recovered : `list` [`RecoveredQuantum`]
        One entry per quantum: ``recovered``, ``skipped`` (its files are
        intact and describe its last attempt, or its outputs name no single
        run) or ``not-run`` (with ``skip_unstarted``).
    """
    from ..datastores.s3 import S3Datastore
    from ..repo import build_datastore, load_repo_config

    repo = load_repo_config(config)
    repo = repo.model_copy(
        update={
            "datastore": repo.datastore.model_copy(update={"trust_mode": True}),
            "cache": repo.cache.model_copy(update={"enabled": False}),
        }
    )
    results: list[RecoveredQuantum] = []
    for quantum in quanta:
        runs = {ref.run for ref in quantum.output_refs()}
        if len(runs) != 1:
            results.append(RecoveredQuantum(str(quantum.id), "skipped"))
            continue
        datastore = build_datastore(repo)  # one per quantum: its records store holds that quantum's only
        if not isinstance(datastore, S3Datastore):
            raise ConfigError("Recovery needs an S3 datastore configuration.")
        try:
            results.append(_recover_one(datastore, quantum, runs.pop(), skip_unstarted=skip_unstarted))
        finally:
            datastore.close()
    return results


@dataclass
class _Existing:
    """What a quantum's files say, read back from ``_records/``."""

    report: QuantumExecutionReport | None = None
    provenance: QuantumProvenanceData | None = None
    damaged: list[str] = field(default_factory=list)
    """One line per missing or damaged file, naming it."""
    present: int = 0
    """Files found."""
    newer: bool = False
    """The report was written by a newer s3qbb: left alone (recovery would lose what it says)."""

    @property
    def intact(self) -> bool:
        return self.present > 0 and not self.damaged and self.report is not None


def _read_existing(datastore: S3Datastore, run: str, quantum_id: uuid.UUID) -> _Existing:
    """Read back a quantum's three files and check each one (3 GETs)."""
    from ..provenance.files import provenance_key, records_key, report_key
    from ..provenance.model import QuantumExecutionReport, QuantumProvenanceData
    from ..registry.records_check import check_records_file

    found = _Existing()
    keys = (
        ("report", report_key(run, quantum_id)),
        ("provenance", provenance_key(run, quantum_id)),
        ("records", records_key(run, quantum_id)),
    )
    data: dict[str, bytes | DatasetIntegrityError | None] = {}
    for kind, key in keys:
        try:
            data[kind] = datastore.read_sidecar(key)
        except DatasetIntegrityError as err:  # failed its checksum on two reads: damaged where stored
            data[kind] = err
    found.present = sum(v is not None for v in data.values())
    if found.present == 0:
        return found
    for kind, key in keys:
        body = data[kind]
        uri = datastore.bucket.uri(datastore.key(key))
        if body is None:
            found.damaged.append(f"{uri} is missing")
            continue
        if isinstance(body, DatasetIntegrityError):
            found.damaged.append(f"{uri} is damaged ({str(body).removeprefix(uri).strip()})")
            continue
        if kind == "report" and _newer_report(body):
            found.newer = True
        try:
            if kind == "report":
                report = QuantumExecutionReport.from_json(body)
                if report.quantum_id != quantum_id:
                    raise ValueError(f"it describes quantum {report.quantum_id}")
                found.report = report
            elif kind == "provenance":
                found.provenance = QuantumProvenanceData.from_json(body)
            elif found.provenance is not None:
                check_records_file(body, found.provenance)
        except Exception as err:  # Any damage, whatever it raises, makes the quantum recoverable.
            found.damaged.append(f"{uri} is damaged ({redact(str(err))[:300]})")
    return found


def _newer_report(body: bytes) -> bool:
    """Tell whether a report that this s3qbb may not parse declares a newer layout version."""
    import json

    from ..provenance.report import REPORT_VERSION

    try:
        version = json.loads(body).get("version")
    except (ValueError, AttributeError):
        return False
    return isinstance(version, int) and not isinstance(version, bool) and version > REPORT_VERSION


@dataclass
class _Adoption:
    records: list[StoredFileInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    attempt_id: str | None = None
    """Newest attempt of this quantum among the adopted objects' write tokens."""


def _adopt(datastore: S3Datastore, quantum: Quantum, refs: Iterable[DatasetRef]) -> _Adoption:
    """Decide, object by object, which outputs found by listing are this quantum's (one HEAD each)."""
    from ..core.attempt import WriteToken
    from ..s3 import checksums
    from ..s3.objects import WRITE_CHECKSUM, WRITE_TOKEN
    from ..s3.ownership import WRITE_DATASET, other_dataset

    out = _Adoption()
    for ref in refs:
        info = datastore.predicted_record(ref)
        key = datastore.key(info.path)
        uri = datastore.bucket.uri(key)
        head = datastore.bucket.head(key)
        if head is None:  # deleted since the listing
            continue
        meta = {k.lower(): v for k, v in head.metadata.items()}
        if meta.get(PENDING_METADATA) == "1":
            out.warnings.append(
                f"{uri} is the placeholder of an unfinished multipart upload ({PENDING_METADATA}), not a "
                "dataset: not adopted."
            )
            continue
        if (other := other_dataset(meta, ref.id)) is not None:
            out.warnings.append(
                f"{uri} stores dataset {other} ({WRITE_DATASET} metadata), not {ref.id}: not adopted."
            )
            continue
        token = WriteToken.parse(meta.get(WRITE_TOKEN))
        if token is not None and token.quantum_id != quantum.id:
            out.warnings.append(
                f"{uri} was written by quantum {token.quantum_id} (its write token), not by quantum "
                f"{quantum.id}: not adopted."
            )
            continue
        checksum = meta.get(WRITE_CHECKSUM)
        size = head.size
        if checksum is None:
            body = datastore.bucket.get(key).body
            size = len(body)
            checksum = str(checksums.compute(datastore.config.checksum_algorithm, body))
            out.warnings.append(
                f"{uri} carries no s3qbb checksum in its metadata (lost, or written by another tool): "
                f"checksum {checksum} computed by reading it ({size} bytes); adopted, check its content."
            )
        if token is not None and (out.attempt_id is None or token.attempt_id > out.attempt_id):
            out.attempt_id = token.attempt_id
        out.records.append(info.update(file_size=size, checksum=checksum))
    return out


def _supersedes(existing: _Existing, attempt_id: str | None, provenance: QuantumProvenanceData) -> bool:
    """Tell whether the outputs found describe a later state than a non-succeeded quantum's intact files."""
    report = existing.report
    if report is None:
        return True
    if report.status == "recovered":
        old = existing.provenance
        return (
            attempt_id != report.attempt_id
            or old is None
            or old.actual_outputs != provenance.actual_outputs
            or old.datastore_records != provenance.datastore_records
        )
    # failed or interrupted: only outputs of a later attempt of this quantum supersede its report.
    return attempt_id is not None and (report.attempt_id is None or attempt_id > report.attempt_id)


def _reason(existing: _Existing) -> str:
    if existing.present == 0:
        return "the job left no records"
    if existing.damaged:
        return "its files are damaged or missing: " + "; ".join(existing.damaged)
    status = existing.report.status if existing.report is not None else "unknown"
    return f"outputs newer than its {status} report were found"


def _recover_one(
    datastore: S3Datastore, quantum: Quantum, run: str, *, skip_unstarted: bool = False
) -> RecoveredQuantum:
    from ..core.wire import dataset_ref_to_simple
    from ..provenance.files import host_info, provenance_key, records_key, report_key
    from ..provenance.model import QuantumDatasetCounts, QuantumExecutionReport, QuantumProvenanceData

    qid = str(quantum.id)
    existing = _read_existing(datastore, run, quantum.id)
    if existing.intact and existing.report is not None and existing.report.status == "succeeded":
        return RecoveredQuantum(qid, "skipped")
    if existing.newer:
        note = "Its report was written by a newer s3qbb: left alone; recover it with that release."
        _LOG.warning("Quantum %s: %s", qid, note)
        return RecoveredQuantum(qid, "skipped", warnings=(note,))
    outputs = quantum.output_refs()
    inputs = quantum.input_refs()
    found = [ref for ref, ok in datastore.stored_many(outputs).items() if ok]
    if skip_unstarted and existing.present == 0 and not found:
        return RecoveredQuantum(qid, "not-run")
    adoption = _adopt(datastore, quantum, found)
    adopted = {info.dataset_id for info in adoption.records}
    if adoption.records:
        datastore.records.insert(adoption.records, replace=True)
    records = datastore.export_records([ref for ref in found if ref.id in adopted])
    provenance = QuantumProvenanceData(
        predicted_inputs=frozenset(r.id for r in inputs),
        available_inputs=frozenset(),
        actual_inputs=frozenset(),
        predicted_outputs=frozenset(r.id for r in outputs),
        actual_outputs=frozenset(adopted),
        datastore_records={name: data.to_simple() for name, data in records.items()},
    )
    if existing.intact and not _supersedes(existing, adoption.attempt_id, provenance):
        return RecoveredQuantum(qid, "skipped")
    warnings = [
        f"Recovered because {_reason(existing)}: input usage is unknown; {len(adopted)} of {len(outputs)} "
        "predicted outputs were found by listing and adopted.",
        *adoption.warnings,
    ]
    for line in warnings:
        _LOG.warning("Quantum %s: %s", qid, line)
    now = datetime.datetime.now(datetime.UTC)
    host = host_info()
    report = QuantumExecutionReport(
        quantum_id=quantum.id,
        task_label=quantum.taskLabel or "unknown",
        task_name=quantum.taskName or quantum.taskLabel or "unknown",
        run=run,
        status="recovered",
        started_at=now,
        ended_at=now,
        duration_s=0.0,
        host=host.host,
        pid=host.pid,
        s3qbb_version=host.s3qbb_version,
        python_version=host.python_version,
        datastores={datastore.name: datastore.get_root()},
        warnings=warnings,
        datasets=QuantumDatasetCounts.from_provenance(provenance),
        refs=[dataset_ref_to_simple(r) for r in [*inputs, *outputs]],
        attempt_id=adoption.attempt_id,
    )
    uploaded = []
    # The files carry a token of the recovered quantum (the recovery is an attempt at writing them),
    # so that a later attempt of the quantum may replace them, and no other quantum may.
    from ..core.attempt import WriteToken

    datastore.write_token = WriteToken.new(quantum.id)
    with _tempdir() as tmp:
        db = datastore.export_records_file(tmp / "records.sqlite3")
        # Report last: a recovery killed half-way leaves files that the next one finds damaged.
        for path, data in (
            (records_key(run, quantum.id), db.read_bytes()),
            (provenance_key(run, quantum.id), provenance.to_json()),
            (report_key(run, quantum.id), report.to_json()),
        ):
            uploaded.append(str(datastore.put_sidecar(path, data, overwrite=True)))
    return RecoveredQuantum(
        qid, "recovered", len(adopted), len(outputs) - len(adopted), tuple(uploaded), tuple(warnings)
    )


@contextmanager
def _tempdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="s3qbb-recover-") as tmp:
        yield Path(tmp)
