"""Two quanta in a row: B reads A's outputs through the records A uploaded, on moto and SeaweedFS."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from butler_helpers import ButlerEnv

from s3qbb.butler import ProvenanceWarning
from s3qbb.core.records import DatastoreRecordData
from s3qbb.core.wire import dataset_ref_from_simple
from s3qbb.errors import DatasetNotFoundError
from s3qbb.provenance import QuantumProvenanceData

pytestmark = pytest.mark.filterwarnings("ignore::s3qbb.butler.ProvenanceWarning")


def test_two_quantum_pipeline(cache_env: ButlerEnv, tmp_path: Path) -> None:
    env = cache_env
    table = env.refs.make("NumpyArray", name="table")
    summary = env.refs.make("StructuredDataDict", name="summary")
    spare = env.refs.make("StructuredDataDict", name="spare")
    hidden = env.refs.make("StructuredDataDict", name="hidden")
    never_made = env.refs.make("StructuredDataDict", name="never_made")
    a_outputs = [table, summary, spare, hidden]
    array = np.arange(30.0).reshape(10, 3)

    # ---- quantum A writes its outputs; its files land beside them.
    quantum_a = env.quantum(outputs=[*a_outputs, never_made], label="make_table")
    with env.butler(quantum_a) as butler_a:
        butler_a.put(array, table)
        butler_a.put({"rows": 10}, summary)
        butler_a.put({"spare": True}, spare)
        butler_a.put({"hidden": True}, hidden)
    a_files = env.records_files(quantum_a.id)
    assert a_files.report.status == "succeeded"
    assert a_files.provenance.actual_outputs == {r.id for r in a_outputs}

    # ---- quantum B is built from A's uploaded provenance JSON (all records but `hidden`'s).
    a_provenance = QuantumProvenanceData.from_json(env.read(env.records_keys(quantum_a.id)[1]))
    all_records = a_provenance.datastore_record_data()
    assert set(all_records) == {"S3Datastore"}
    assert all_records["S3Datastore"].dataset_ids == {r.id for r in a_outputs}
    given = all_records["S3Datastore"].subset([table.id, summary.id, spare.id])
    assert given is not None
    records: dict[str, DatastoreRecordData] = {"S3Datastore": given}
    result = env.refs.make("StructuredDataDict", name="result")
    b_inputs = [table, summary, spare, hidden, never_made]
    quantum_b = env.quantum(inputs=b_inputs, outputs=[result], records=records, label="use_table")
    with env.butler(quantum_b) as butler_b:
        existence = butler_b.stored_many(b_inputs)
        assert existence == {table: True, summary: True, spare: True, hidden: False, never_made: False}
        rows = butler_b.get(table, parameters={"rows": slice(2, 4)})
        np.testing.assert_array_equal(rows, array[2:4])
        assert butler_b.get(summary) == {"rows": 10}
        handle = butler_b.getDeferred(spare)
        butler_b.markInputUnused(spare)
        assert handle.get() == {"spare": True}, "a handle still reads after markInputUnused"
        butler_b.markInputUnused(spare)
        for missing in (hidden, never_made):
            with pytest.raises(DatasetNotFoundError):
                butler_b.get(missing)
            with pytest.raises(DatasetNotFoundError):
                butler_b.getURI(missing)
        assert butler_b.getURI(table).path == env.backdoor.location(table)
        butler_b.put({"total": float(rows.sum())}, result)

    b_files = env.records_files(quantum_b.id)
    b_prov = b_files.provenance
    assert b_prov.predicted_inputs == {r.id for r in b_inputs}
    assert b_prov.available_inputs == {table.id, summary.id, spare.id}
    assert b_prov.actual_inputs == {table.id, summary.id}
    assert b_prov.predicted_outputs == b_prov.actual_outputs == {result.id}
    assert set(b_prov.datastore_records["S3Datastore"].dataset_ids) == {result.id}
    assert b_files.report.status == "succeeded"
    assert b_files.report.datasets.actual_inputs == 2
    assert result.id in b_files.records_rows(tmp_path)
    # A's files are untouched by B.
    assert env.records_files(quantum_a.id).provenance == a_files.provenance


def test_no_trust_mode_without_records(env: ButlerEnv) -> None:
    """An input whose object exists but whose record was not given is not found (no trust mode)."""
    upstream = env.refs.make()
    with env.butler(env.quantum(outputs=[upstream], label="up")) as producer:
        producer.put({"exists": True}, upstream)
    assert env.backdoor.has_artifact(upstream)
    quantum = env.quantum(inputs=[upstream], outputs=[env.refs.make()])
    with env.butler(quantum) as consumer:
        assert consumer.stored(upstream) is False
        with pytest.raises(DatasetNotFoundError, match="no record"):
            consumer.get(upstream)
        handle = consumer.getDeferred(upstream)
        with pytest.raises(DatasetNotFoundError):
            handle.get()
        consumer.markInputUnused(upstream)
        provenance = consumer.extract_provenance_data()
    assert provenance.available_inputs == frozenset()
    assert provenance.actual_inputs == frozenset()


def test_pipeline_with_records_from_report_refs(moto_env: ButlerEnv) -> None:
    """B's quantum can be rebuilt from A's files alone: refs from the report, records from provenance."""
    made = moto_env.refs.make()
    quantum_a = moto_env.quantum(outputs=[made], label="a")
    with moto_env.butler(quantum_a) as butler_a:
        butler_a.put({"v": 42}, made)
    files = moto_env.records_files(quantum_a.id)
    refs = [
        dataset_ref_from_simple(
            s, universe=moto_env.refs.universe, storage_classes=moto_env.refs.storage_classes
        )
        for s in files.report.refs
    ]
    assert [r.id for r in refs] == [made.id]
    quantum_b = moto_env.quantum(
        inputs=refs, outputs=[moto_env.refs.make()], records=files.provenance.datastore_record_data()
    )
    with moto_env.butler(quantum_b) as butler_b:
        assert butler_b.stored_many(refs) == {refs[0]: True}
        assert butler_b.get(refs[0]) == {"v": 42}
        with warnings.catch_warnings():
            warnings.simplefilter("error", ProvenanceWarning)
            provenance = butler_b.extract_provenance_data()
    assert provenance.actual_inputs == provenance.available_inputs == {made.id}
