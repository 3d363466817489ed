"""Data builders for the registry tests (imported by their conftest and test modules).

Two ways to make the files a run leaves in ``<run>/_records/``:

- `run_pipeline`: real `QuantumBackedButler`s (through `s3qbb.batch.execution.run_quantum`)
  on the moto server, a three-stage pipeline like ``s3qbb.demo``;
- `SyntheticRuns`: the files written directly from the provenance models (fast,
  for many quanta, hostile variants and the multi-process tests).
"""

from __future__ import annotations

import datetime
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pg_cluster
import sqlalchemy as sa

from s3qbb.core import DataCoordinate, DatasetRef, DatasetType, DimensionUniverse, Quantum
from s3qbb.core.records import DatastoreRecordData, StoredFileInfo
from s3qbb.core.wire import dataset_ref_to_simple
from s3qbb.datastores.templates import sanitize_run
from s3qbb.provenance import QuantumExecutionReport, QuantumProvenanceData, provenance_key, report_key
from s3qbb.provenance.model import ErrorInfo
from s3qbb.records.store import SqliteRecordsStore

ROOT = "repo"
DATASTORE = "S3Datastore"
T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


# --- registries -------------------------------------------------------------------


def skip_without_postgres() -> str:
    """The test database (see tests/pg_cluster.py): found, started, or the test skips."""
    return pg_cluster.postgres_url()


def drop_namespace(url: str, namespace: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
    finally:
        engine.dispose()


# --- synthetic files ------------------------------------------------------------------

_UNIVERSE = DimensionUniverse()


def records_file(records: DatastoreRecordData, datastore: str = DATASTORE) -> bytes:
    """Return the SQLite records file a butler holding these records uploads."""
    with tempfile.TemporaryDirectory() as tmp, SqliteRecordsStore(datastore_name=datastore) as store:
        store.import_records(records)
        return store.flush_to_file(Path(tmp) / "records.sqlite3").read_bytes()


def make_ref(name: str, run: str, storage_class: str = "StructuredDataDict", **data_id: Any) -> DatasetRef:
    dimensions = sorted(data_id)
    dataset_type = DatasetType(name, dimensions, storage_class, universe=_UNIVERSE)
    return DatasetRef(dataset_type, {"instrument": "Cam", **data_id}, run)


@dataclass
class SyntheticQuantum:
    quantum_id: uuid.UUID
    run: str
    label: str
    inputs: list[DatasetRef]
    outputs: list[DatasetRef]
    written: list[DatasetRef]
    provenance: QuantumProvenanceData
    report: QuantumExecutionReport
    records: bytes = b""
    """The SQLite records file of the quantum."""


@dataclass
class SyntheticRuns:
    """Writes per-quantum files straight to a bucket, as `QuantumBackedButler.finish` would."""

    client: Any
    bucket: str
    root: str = ROOT
    quanta: list[SyntheticQuantum] = field(default_factory=list)

    def uri(self, run: str) -> str:
        return f"s3://{self.bucket}/{self.root}/{sanitize_run(run)}/"

    def key(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def quantum(
        self,
        run: str,
        label: str,
        inputs: list[DatasetRef],
        outputs: list[DatasetRef],
        *,
        unused: frozenset[uuid.UUID] = frozenset(),
        missing: frozenset[uuid.UUID] = frozenset(),
        not_written: frozenset[uuid.UUID] = frozenset(),
        with_refs: bool = True,
        with_report: bool = True,
        failed: bool = False,
        write: bool = True,
    ) -> SyntheticQuantum:
        qid = uuid.uuid4()
        written = [r for r in outputs if r.id not in not_written]
        records = DatastoreRecordData(
            {
                ref.id: {
                    "file_datastore_records": [
                        StoredFileInfo(
                            dataset_id=ref.id,
                            path=f"{sanitize_run(run)}/{ref.datasetType.name}/{ref.id}.json",
                            formatter="s3qbb.formatters.json.JsonFormatter",
                            storage_class=ref.datasetType.storageClass.name,
                            component=None,
                            checksum="CRC32C:AAAAAA==",
                            file_size=100 + i,
                        )
                    ]
                }
                for i, ref in enumerate(written)
            }
        )
        provenance = QuantumProvenanceData(
            predicted_inputs={r.id for r in inputs},
            available_inputs={r.id for r in inputs if r.id not in missing},
            actual_inputs={r.id for r in inputs if r.id not in missing and r.id not in unused},
            predicted_outputs={r.id for r in outputs},
            actual_outputs={r.id for r in written},
            datastore_records={DATASTORE: records.to_simple()} if written else {},
        )
        report = QuantumExecutionReport(
            quantum_id=qid,
            task_label=label,
            task_name=f"tasks.{label}",
            run=run,
            status="failed" if failed else "succeeded",
            started_at=T0,
            ended_at=T0 + datetime.timedelta(seconds=2),
            duration_s=2.0,
            host="worker-7",
            pid=123,
            s3qbb_version="0.1.0",
            python_version="3.12.0",
            error=ErrorInfo(type="RuntimeError", message="task blew up") if failed else None,
            refs=[dataset_ref_to_simple(r) for r in [*inputs, *outputs]] if with_refs else [],
        )
        made = SyntheticQuantum(
            qid, run, label, inputs, outputs, written, provenance, report, records_file(records)
        )
        if write:
            self.put(provenance_key(run, qid), provenance.to_json())
            if with_report:  # without: daf_butler's provenance alone, no s3qbb records file either
                self.put(report_key(run, qid), report.to_json())
                self.put(f"{sanitize_run(run)}/_records/{qid}.sqlite3", made.records)
        self.quanta.append(made)
        return made

    def put(self, relative: str, body: bytes) -> str:
        key = self.key(relative)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        return key

    def chain(self, runs: list[str], width: int, *, with_refs: bool = True) -> list[list[SyntheticQuantum]]:
        """Runs whose quanta each read one output of the previous run's quantum of the same index."""
        stages: list[list[SyntheticQuantum]] = []
        previous: list[SyntheticQuantum] = []
        for level, run in enumerate(runs):
            stage = []
            for i in range(width):
                inputs = [previous[i].outputs[0]] if previous else []
                outputs = [
                    make_ref(f"out{level}", run, detector=i, visit=1),
                    make_ref(f"meta{level}", run, detector=i, visit=1),
                ]
                stage.append(self.quantum(run, f"task{level}", inputs, outputs, with_refs=with_refs))
            stages.append(stage)
            previous = stage
        return stages


# --- real butlers ----------------------------------------------------------------------


@dataclass
class PipelineRun:
    bucket: str
    raw_run: str
    run: str
    raws: dict[int, DatasetRef]
    calexps: dict[int, DatasetRef]
    metrics: dict[int, DatasetRef]
    summary: DatasetRef
    quanta: dict[str, list[Quantum]]
    failed_detector: int | None

    def uri(self, run: str) -> str:
        return f"s3://{self.bucket}/{ROOT}/{sanitize_run(run)}/"


def _records_from(
    client: Any, bucket: str, quanta: list[Quantum], run: str
) -> dict[str, DatastoreRecordData]:
    merged: dict[str, DatastoreRecordData] = {}
    for q in quanta:
        body = client.get_object(Bucket=bucket, Key=f"{ROOT}/{provenance_key(run, q.id)}")["Body"].read()
        for name, data in QuantumProvenanceData.from_json(body).datastore_record_data().items():
            merged.setdefault(name, DatastoreRecordData({})).update(data)
    return merged


def _failing_calibrate(butler: Any, quantum: Quantum) -> None:
    (raw_ref,) = quantum.input_refs()
    butler.get(raw_ref)
    raise RuntimeError("calibration diverged")


def run_pipeline(endpoint: Any, *, detectors: int = 3, fail_detector: int | None = None) -> PipelineRun:
    """Run ingest -> calibrate (per detector) -> summarize with real butlers on the test server."""
    from s3qbb import demo
    from s3qbb.batch.execution import run_quantum
    from s3qbb.repo import DatastoreConfig, RepoConfig

    root = f"s3://{endpoint.bucket}/{ROOT}"
    config = RepoConfig(datastore=DatastoreConfig(root=root, endpoint=endpoint.config))
    types = demo._dataset_types()
    universe = types["raw"].dimensions.universe
    raw_run, run = "pipe/raw", "pipe/run1"
    visit = {"instrument": "DemoCam", "visit": 42}
    raws = {d: DatasetRef(types["raw"], {**visit, "detector": d}, raw_run) for d in range(detectors)}
    calexps = {d: DatasetRef(types["calexp"], {**visit, "detector": d}, run) for d in range(detectors)}
    metrics = {
        d: DatasetRef(types["calexp_metrics"], {**visit, "detector": d}, run) for d in range(detectors)
    }
    summary = DatasetRef(types["visit_summary"], visit, run)

    ingest_q = Quantum(taskLabel="ingest", taskName="s3qbb.demo.ingest", outputs=list(raws.values()))
    assert run_quantum(config, ingest_q, demo.ingest).exit_code == 0
    raw_records = _records_from(endpoint.client, endpoint.bucket, [ingest_q], raw_run)
    calibrate_q = [
        Quantum(
            taskLabel="calibrate",
            taskName="s3qbb.demo.calibrate",
            dataId=DataCoordinate.standardize({**visit, "detector": d}, universe=universe),
            inputs=[raws[d]],
            outputs=[calexps[d], metrics[d]],
            datastore_records=raw_records,
        )
        for d in range(detectors)
    ]
    for d, q in enumerate(calibrate_q):
        task = _failing_calibrate if d == fail_detector else demo.calibrate
        assert run_quantum(config, q, task).exit_code == (1 if d == fail_detector else 0)
    ok = [q for d, q in enumerate(calibrate_q) if d != fail_detector]
    summarize_q = Quantum(
        taskLabel="summarize",
        taskName="s3qbb.demo.summarize",
        inputs=[metrics[d] for d in range(detectors) if d != fail_detector],
        outputs=[summary],
        datastore_records=_records_from(endpoint.client, endpoint.bucket, ok, run),
    )
    assert run_quantum(config, summarize_q, demo.summarize).exit_code == 0
    return PipelineRun(
        endpoint.bucket,
        raw_run,
        run,
        raws,
        calexps,
        metrics,
        summary,
        {"ingest": [ingest_q], "calibrate": calibrate_q, "summarize": [summarize_q]},
        fail_detector,
    )
