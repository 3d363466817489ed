"""Last attempt wins: re-ingesting a quantum's rewritten files replaces it only with a later attempt."""

from __future__ import annotations

import datetime
import sqlite3
from pathlib import Path

import pytest
from registry_data import DATASTORE, SyntheticQuantum, SyntheticRuns, make_ref, records_file

from s3qbb.core.attempt import new_attempt_id
from s3qbb.core.records import DatastoreRecordData, StoredFileInfo
from s3qbb.datastores.templates import sanitize_run
from s3qbb.provenance import provenance_key, records_key, report_key
from s3qbb.provenance.model import ErrorInfo
from s3qbb.registry import REGISTRY_SCHEMA_VERSION, Registry
from s3qbb.registry.results import IngestSummary
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.moto_server

RUN = "att/run"
T0 = 1_780_000_000.0


def _attempt(
    runs: SyntheticRuns,
    base: SyntheticQuantum,
    *,
    attempt_id: str | None,
    written: int,
    checksum: str,
    status: str = "succeeded",
    recovered_at: float = 0.0,
) -> None:
    """Rewrite a quantum's three files as one attempt: its first ``written`` outputs, with this checksum."""
    refs = base.outputs[:written]
    records = DatastoreRecordData(
        {
            ref.id: {
                "file_datastore_records": [
                    StoredFileInfo(
                        dataset_id=ref.id,
                        path=f"{sanitize_run(RUN)}/{ref.datasetType.name}/{ref.id}.json",
                        formatter="s3qbb.formatters.json.JsonFormatter",
                        storage_class=ref.datasetType.storageClass.name,
                        component=None,
                        checksum=checksum,
                        file_size=10 + i,
                    )
                ]
            }
            for i, ref in enumerate(refs)
        }
    )
    provenance = base.provenance.model_copy(
        update={
            "actual_outputs": frozenset(r.id for r in refs),
            "datastore_records": {DATASTORE: records.to_simple()} if refs else {},
        }
    )
    when = datetime.datetime.fromtimestamp(T0 + recovered_at, datetime.UTC)
    report = base.report.model_copy(
        update={
            "attempt_id": attempt_id,
            "status": status,
            "started_at": when,
            "ended_at": when,
            "error": ErrorInfo(type="RuntimeError", message="killed") if status == "failed" else None,
        }
    )
    runs.put(records_key(RUN, base.quantum_id), records_file(records))
    runs.put(provenance_key(RUN, base.quantum_id), provenance.to_json())
    runs.put(report_key(RUN, base.quantum_id), report.to_json())


def _stored(registry: Registry) -> dict[str, str | None]:
    """Data ID detector -> checksum of the stored datasets of the run."""
    return {
        str((row.data_id or {})["detector"]): row.records[0].checksum
        for row in registry.datasets(run=RUN, stored=True)
    }


def _ingest(registry: Registry, runs: SyntheticRuns, endpoint: S3TestEndpoint) -> IngestSummary:
    summary = registry.ingest_run(runs.uri(RUN), config=endpoint.config)
    assert summary.failures == []
    return summary


def _base(runs: SyntheticRuns) -> SyntheticQuantum:
    outputs = [make_ref("out", RUN, detector=d, visit=1) for d in range(4)]
    return runs.quantum(RUN, "t", [make_ref("raw", "raw", detector=0, visit=1)], outputs, write=False)


def test_later_attempt_replaces_earlier_one_never_the_reverse(
    registry: Registry, moto_endpoint: S3TestEndpoint
) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    q = _base(runs)
    a1, a2, a3 = (new_attempt_id(T0 + i) for i in (1, 2, 3))

    _attempt(runs, q, attempt_id=a2, written=3, checksum="CRC32C:AAAAAg==", status="failed")
    first = _ingest(registry, runs, moto_endpoint)
    assert (first.quanta_added, first.quanta_replaced) == (1, 0)
    assert _stored(registry) == {"0": "CRC32C:AAAAAg==", "1": "CRC32C:AAAAAg==", "2": "CRC32C:AAAAAg=="}

    # An older attempt's files (uploaded late) do not replace the newer one ...
    _attempt(runs, q, attempt_id=a1, written=4, checksum="CRC32C:AAAAAQ==")
    older = _ingest(registry, runs, moto_endpoint)
    assert (older.quanta_added, older.quanta_replaced, older.quanta_skipped) == (0, 0, 1)
    assert older.requests["GetObject"] == 3  # read once to compare attempts ...
    assert _stored(registry) == {"0": "CRC32C:AAAAAg==", "1": "CRC32C:AAAAAg==", "2": "CRC32C:AAAAAg=="}
    again = _ingest(registry, runs, moto_endpoint)
    assert again.requests == {"ListObjectsV2": 1}  # ... and not again while the files stay the same

    # ... a later one does: its records replace the earlier ones, outputs it did not write lose theirs.
    _attempt(runs, q, attempt_id=a3, written=2, checksum="CRC32C:AAAAAw==")
    later = _ingest(registry, runs, moto_endpoint)
    assert (later.quanta_added, later.quanta_replaced, later.quanta_skipped) == (0, 1, 0)
    assert "1 replaced by a later attempt" in later.describe()
    assert _stored(registry) == {"0": "CRC32C:AAAAAw==", "1": "CRC32C:AAAAAw=="}
    row = registry.quantum(q.quantum_id)
    assert row is not None and row.status == "succeeded" and row.attempt == f"{a3}.1."
    assert set(row.datasets["actual_output"]) == {r.id for r in q.outputs[:2]}
    assert set(row.datasets["predicted_output"]) == {r.id for r in q.outputs}
    counts = registry.counts()
    assert (counts["quantum"], counts["dataset"]) == (1, 5)  # 4 outputs + 1 input, each once

    # Idempotent: the same files again change nothing and download nothing.
    same = _ingest(registry, runs, moto_endpoint)
    assert same.requests == {"ListObjectsV2": 1} and same.nothing_new


def test_recovered_attempt_is_superseded_by_a_real_one(
    registry: Registry, moto_endpoint: S3TestEndpoint
) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    q = _base(runs)
    killed, rerun = new_attempt_id(T0 + 1), new_attempt_id(T0 + 2)

    # Recovery of objects without write tokens (attempt unknown), then of the killed attempt's objects.
    _attempt(runs, q, attempt_id=None, written=1, checksum="CRC32C:AAAAAA==", status="recovered")
    assert _ingest(registry, runs, moto_endpoint).quanta_added == 1
    _attempt(runs, q, attempt_id=killed, written=2, checksum="CRC32C:AAAAAQ==", status="recovered")
    assert _ingest(registry, runs, moto_endpoint).quanta_replaced == 1
    # A second recovery of the same attempt that found more outputs wins over the first.
    _attempt(
        runs, q, attempt_id=killed, written=3, checksum="CRC32C:AAAAAQ==", status="recovered", recovered_at=60
    )
    assert _ingest(registry, runs, moto_endpoint).quanta_replaced == 1
    assert len(_stored(registry)) == 3
    # The re-run's own report wins over every recovery ...
    _attempt(runs, q, attempt_id=rerun, written=4, checksum="CRC32C:AAAAAg==")
    assert _ingest(registry, runs, moto_endpoint).quanta_replaced == 1
    assert set(_stored(registry).values()) == {"CRC32C:AAAAAg=="} and len(_stored(registry)) == 4
    # ... and a recovery of that same attempt (recovery raced the live job) does not replace it.
    _attempt(
        runs, q, attempt_id=rerun, written=1, checksum="CRC32C:AAAAAw==", status="recovered", recovered_at=90
    )
    late = _ingest(registry, runs, moto_endpoint)
    assert (late.quanta_replaced, late.quanta_skipped) == (0, 1)
    row = registry.quantum(q.quantum_id)
    assert row is not None and row.status == "succeeded"
    assert set(_stored(registry).values()) == {"CRC32C:AAAAAg=="} and len(_stored(registry)) == 4


def test_version_1_registry_is_upgraded_and_its_quanta_refreshed(
    moto_endpoint: S3TestEndpoint, tmp_path: Path
) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    q = _base(runs)
    _attempt(runs, q, attempt_id=new_attempt_id(T0), written=4, checksum="CRC32C:AAAAAQ==")
    path = tmp_path / "old.sqlite3"
    with Registry.from_url(path) as registry:
        _ingest(registry, runs, moto_endpoint)
    with sqlite3.connect(path) as con:  # what a registry of the previous release looks like
        con.execute("ALTER TABLE quantum DROP COLUMN attempt")
        con.execute("ALTER TABLE quantum DROP COLUMN files_tag")
        con.execute("UPDATE registry_meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    with Registry.from_url(path) as registry:
        with sqlite3.connect(path) as con:
            assert con.execute("SELECT value FROM registry_meta").fetchall() == [(REGISTRY_SCHEMA_VERSION,)]
        con.close()
        row = registry.quantum(q.quantum_id)
        assert row is not None and row.attempt is None
        refreshed = _ingest(registry, runs, moto_endpoint)  # attempt unknown: the files are read again
        assert refreshed.quanta_replaced == 1
        row = registry.quantum(q.quantum_id)
        assert row is not None and row.attempt is not None
        assert len(_stored(registry)) == 4
        assert _ingest(registry, runs, moto_endpoint).requests == {"ListObjectsV2": 1}
