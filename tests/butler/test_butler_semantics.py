"""QuantumBackedButler semantics: what may be read and written, and what provenance records."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from butler_helpers import ButlerEnv, client_of

from s3qbb.butler import ProvenanceWarning, QuantumBackedButler
from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.core.records import DatastoreRecordData
from s3qbb.errors import (
    DatasetIntegrityError,
    DatasetNotFoundError,
    DatasetTypeError,
    InvalidParameterError,
    StorageClassError,
    UnknownStorageClassError,
    UnpredictedDatasetError,
)
from s3qbb.testing.faults import RequestCounter

pytestmark = pytest.mark.filterwarnings("ignore::s3qbb.butler.ProvenanceWarning")


def _produce(env: ButlerEnv, refs: list[DatasetRef]) -> dict[str, DatastoreRecordData]:
    """Write ``refs`` in an upstream quantum and return their records."""
    with env.butler(env.quantum(outputs=refs, label="upstream")) as producer:
        for i, ref in enumerate(refs):
            producer.put({"i": i, "name": ref.datasetType.name}, ref)
    return producer.extract_provenance_data().datastore_record_data()


def _no_provenance_warnings(butler: QuantumBackedButler) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProvenanceWarning)
        butler.extract_provenance_data()


# ------------------------------------------------------------------ writes


def test_put_of_unpredicted_output_fails_before_any_request(env: ButlerEnv) -> None:
    upstream = env.refs.make()
    records = _produce(env, [upstream])
    out, stranger = env.refs.make(), env.refs.make()
    with env.butler(env.quantum(inputs=[upstream], outputs=[out], records=records)) as butler:
        butler.stored_many([upstream])
        with RequestCounter(client_of(butler)) as counter:
            with pytest.raises(UnpredictedDatasetError, match="not a predicted output"):
                butler.put({"x": 1}, stranger)
            with pytest.raises(UnpredictedDatasetError, match="predicted input"):
                butler.put({"x": 1}, upstream)
            assert counter.total == 0
        assert not env.backdoor.has_artifact(stranger)
        assert env.backdoor.read_artifact(upstream) != b""
        assert butler.get(upstream) == {"i": 0, "name": upstream.datasetType.name}
        provenance = butler.extract_provenance_data()
    assert provenance.actual_outputs == frozenset()


def test_put_costs_one_put_request(moto_env: ButlerEnv) -> None:
    ref = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[ref])) as butler:
        counter = RequestCounter(client_of(butler))
        butler.put({"one": 1}, ref)
        counter.detach()
        assert counter.requests == {"PutObject": 1}


# ------------------------------------------------------------------- reads


def test_get_of_predicted_input_marks_it_available_and_actual(moto_env: ButlerEnv) -> None:
    first, second = moto_env.refs.make(), moto_env.refs.make()
    records = _produce(moto_env, [first, second])
    quantum = moto_env.quantum(inputs=[first, second], outputs=[moto_env.refs.make()], records=records)
    with moto_env.butler(quantum) as butler:
        assert butler.get(first)["i"] == 0
        with pytest.warns(ProvenanceWarning, match="did not check 1 predicted input"):
            provenance = butler.extract_provenance_data()
    assert provenance.available_inputs == {first.id}
    assert provenance.actual_inputs == {first.id}


def test_failed_get_marks_nothing(moto_env: ButlerEnv) -> None:
    upstream = moto_env.refs.make()
    records = _produce(moto_env, [upstream])
    moto_env.backdoor.delete_artifact(upstream)
    quantum = moto_env.quantum(inputs=[upstream], outputs=[moto_env.refs.make()], records=records)
    with moto_env.butler(quantum) as butler:
        with pytest.raises(DatasetNotFoundError):
            butler.get(upstream)
        assert butler.stored(upstream) is False
        provenance = butler.extract_provenance_data()
    assert provenance.actual_inputs == frozenset()
    assert provenance.available_inputs == frozenset()


def test_get_deferred_marks_actual_before_reading(env: ButlerEnv) -> None:
    upstream = env.refs.make()
    records = _produce(env, [upstream])
    quantum = env.quantum(inputs=[upstream], outputs=[env.refs.make()], records=records)
    with env.butler(quantum) as butler:
        butler.stored_many([upstream])
        with RequestCounter(client_of(butler)) as counter:
            handle = butler.getDeferred(upstream)
            assert counter.total == 0, "getDeferred must not read"
            assert butler.extract_provenance_data().actual_inputs == {upstream.id}
            assert handle.get()["i"] == 0
            assert counter.requests["GetObject"] == 1


def test_mark_input_unused(moto_env: ButlerEnv) -> None:
    by_get, by_handle, untouched = moto_env.refs.make(), moto_env.refs.make(), moto_env.refs.make()
    records = _produce(moto_env, [by_get, by_handle, untouched])
    inputs = [by_get, by_handle, untouched]
    quantum = moto_env.quantum(inputs=inputs, outputs=[moto_env.refs.make()], records=records)
    with moto_env.butler(quantum) as butler:
        butler.stored_many([by_get, by_handle, untouched])
        butler.get(by_get)
        butler.getDeferred(by_handle)
        assert butler.extract_provenance_data().actual_inputs == {by_get.id, by_handle.id}
        butler.markInputUnused(by_get)
        butler.markInputUnused(by_handle)
        butler.markInputUnused(untouched)  # never used: nothing to remove, no error
        provenance = butler.extract_provenance_data()
    assert provenance.actual_inputs == frozenset()
    assert provenance.available_inputs == {by_get.id, by_handle.id, untouched.id}, "still available"


def test_stored_and_stored_many_record_available_and_unavailable_inputs(env: ButlerEnv) -> None:
    present, deleted, never_written = env.refs.make(), env.refs.make(), env.refs.make()
    records = _produce(env, [present, deleted])
    env.backdoor.delete_artifact(deleted)
    quantum = env.quantum(
        inputs=[present, deleted, never_written], outputs=[env.refs.make()], records=records
    )
    with env.butler(quantum) as butler:
        assert butler.stored_many([present, deleted]) == {present: True, deleted: False}
        assert butler.stored(never_written) is False
        _no_provenance_warnings(butler)
        provenance = butler.extract_provenance_data()
    assert provenance.available_inputs == {present.id}
    assert provenance.predicted_inputs == {present.id, deleted.id, never_written.id}


def test_availability_follows_the_latest_check(moto_env: ButlerEnv) -> None:
    upstream = moto_env.refs.make()
    records = _produce(moto_env, [upstream])
    quantum = moto_env.quantum(inputs=[upstream], outputs=[moto_env.refs.make()], records=records)
    with moto_env.butler(quantum) as butler:
        assert butler.stored(upstream) is True
        assert butler.extract_provenance_data().available_inputs == {upstream.id}
        moto_env.backdoor.delete_artifact(upstream)
        assert butler.stored(upstream) is False
        assert butler.extract_provenance_data().available_inputs == frozenset()


def test_provenance_warns_when_inputs_were_never_checked(moto_env: ButlerEnv) -> None:
    a, b = moto_env.refs.make(), moto_env.refs.make()
    records = _produce(moto_env, [a, b])
    quantum = moto_env.quantum(inputs=[a, b], outputs=[moto_env.refs.make()], records=records)
    with moto_env.butler(quantum) as butler:
        with pytest.warns(ProvenanceWarning, match="did not check 2 predicted input") as caught:
            butler.extract_provenance_data()
        assert len(caught) == 1
        butler.stored(a)
        with pytest.warns(ProvenanceWarning, match=str(b.id)):
            butler.extract_provenance_data()
        butler.stored_many([b])
        _no_provenance_warnings(butler)


def test_provenance_warns_when_a_used_input_was_unavailable(moto_env: ButlerEnv) -> None:
    upstream = moto_env.refs.make()
    records = _produce(moto_env, [upstream])
    moto_env.backdoor.delete_artifact(upstream)
    quantum = moto_env.quantum(inputs=[upstream], outputs=[moto_env.refs.make()], records=records)
    with moto_env.butler(quantum) as butler:
        assert butler.stored_many([upstream]) == {upstream: False}
        butler.getDeferred(upstream)
        with pytest.warns(ProvenanceWarning, match="used but recorded as unavailable"):
            provenance = butler.extract_provenance_data()
        butler.markInputUnused(upstream)
        _no_provenance_warnings(butler)
    assert provenance.actual_inputs == frozenset(), "daf_butler keeps actual inputs within available ones"
    assert provenance.available_inputs == frozenset()


def test_quantum_without_inputs_gives_no_warning(moto_env: ButlerEnv) -> None:
    out = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[out])) as butler:
        butler.put({"w": 1}, out)
        _no_provenance_warnings(butler)


# -------------------------------------------------------------- reach


def test_reading_outside_the_quantum(env: ButlerEnv) -> None:
    inside, outside = env.refs.make(), env.refs.make()
    records = _produce(env, [inside, outside])
    out = env.refs.make()
    quantum = env.quantum(inputs=[inside], outputs=[out], records=records)
    with env.butler(quantum) as butler:
        butler.stored_many([inside])
        with pytest.raises(UnpredictedDatasetError, match="not part of this quantum"):
            butler.get(outside)
        with pytest.raises(UnpredictedDatasetError, match="not part of this quantum"):
            butler.getDeferred(outside)
        with pytest.raises(UnpredictedDatasetError, match="predicted output not yet written"):
            butler.get(out)
    again = env.quantum(inputs=[inside], outputs=[out], records=records)
    with env.butler(again, allow_unpredicted_reads=True) as permissive:
        permissive.stored_many([inside])
        assert permissive.get(outside)["i"] == 1
        assert permissive.getDeferred(outside).get()["i"] == 1
        provenance = permissive.extract_provenance_data()
    assert provenance.actual_inputs == frozenset(), "unpredicted reads are not predicted inputs"
    assert outside.id not in provenance.available_inputs


def test_reading_an_output_this_quantum_wrote(moto_env: ButlerEnv) -> None:
    out = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[out])) as butler:
        butler.put({"mine": True}, out)
        assert butler.get(out) == {"mine": True}
        assert butler.getDeferred(out).get() == {"mine": True}
        provenance = butler.extract_provenance_data()
    assert provenance.actual_inputs == frozenset()
    assert provenance.actual_outputs == {out.id}


# ------------------------------------------------------------------ prune


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "disassociate=True without purge=True"),
        ({"disassociate": True, "unstore": True}, "disassociate=True without purge=True"),
        ({"purge": True, "disassociate": True, "unstore": False}, "purge=True without unstore=True"),
        ({"purge": True, "disassociate": False, "unstore": True}, "purge=True without disassociate=True"),
        ({"purge": True, "disassociate": False, "unstore": False}, "purge=True without"),
    ],
)
def test_prune_argument_rules(moto_env: ButlerEnv, kwargs: dict[str, Any], match: str) -> None:
    ref = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[ref])) as butler:
        butler.put({"keep": 1}, ref)
        with RequestCounter(client_of(butler)) as counter:
            with pytest.raises(TypeError, match=match):
                butler.pruneDatasets([ref], **kwargs)
            assert counter.total == 0
        assert butler.get(ref) == {"keep": 1}
        assert moto_env.backdoor.has_artifact(ref)
        assert butler.extract_provenance_data().actual_outputs == {ref.id}


def test_prune_unstore_deletes_the_objects(cache_env: ButlerEnv) -> None:
    pruned, kept = cache_env.refs.make(), cache_env.refs.make("NumpyArray")
    with cache_env.butler(cache_env.quantum(outputs=[pruned, kept])) as butler:
        butler.put({"gone": True}, pruned)
        butler.put(np.ones((2, 2)), kept)
        assert butler.get(pruned) == {"gone": True}  # cached, when there is a cache
        butler.pruneDatasets([pruned], disassociate=False, unstore=True)
        assert not cache_env.backdoor.has_artifact(pruned)
        assert cache_env.backdoor.has_artifact(kept)
        assert butler.stored(pruned) is False
        with pytest.raises(DatasetNotFoundError):
            butler.get(pruned)
        with pytest.raises(DatasetNotFoundError):
            butler.getURI(pruned)
        provenance = butler.extract_provenance_data()
    assert set(provenance.datastore_records["S3Datastore"].dataset_ids) == {kept.id}


def test_prune_purge_forgets_the_outputs(env: ButlerEnv) -> None:
    purged, kept = env.refs.make(), env.refs.make()
    with env.butler(env.quantum(outputs=[purged, kept])) as butler:
        butler.put({"p": 1}, purged)
        butler.put({"k": 1}, kept)
        butler.pruneDatasets([purged], disassociate=True, unstore=True, purge=True)
        assert not env.backdoor.has_artifact(purged)
        assert env.backdoor.has_artifact(kept)
        with pytest.raises(UnpredictedDatasetError):
            butler.get(purged)
        provenance = butler.extract_provenance_data()
    assert provenance.actual_outputs == {kept.id}
    assert provenance.predicted_outputs == {purged.id, kept.id}
    assert set(provenance.datastore_records["S3Datastore"].dataset_ids) == {kept.id}
    assert env.records_files(butler.quantum_id).provenance.actual_outputs == {kept.id}


def test_prune_ignores_datasets_not_stored(moto_env: ButlerEnv) -> None:
    unwritten = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[unwritten])) as butler:
        butler.pruneDatasets([unwritten], disassociate=False, unstore=True)
        butler.pruneDatasets([unwritten], disassociate=True, unstore=True, purge=True)
        assert butler.extract_provenance_data().actual_outputs == frozenset()


def test_prune_rejects_component_refs(moto_env: ButlerEnv) -> None:
    ref = moto_env.refs.make("StructuredComposite")
    with moto_env.butler(moto_env.quantum(outputs=[ref])) as butler:
        butler.put({"summary": {}, "output": {}, "data": []}, ref)
        with pytest.raises(DatasetTypeError, match="component"):
            butler.pruneDatasets([ref.makeComponentRef("data")], disassociate=False, unstore=True)
        assert moto_env.backdoor.has_artifact(ref)


# ------------------------------------------------------------- bad reads


def test_rejected_reads_do_not_mark_inputs_used(env: ButlerEnv) -> None:
    table, corrupted = env.refs.make("NumpyArray"), env.refs.make()
    with env.butler(env.quantum(outputs=[table, corrupted], label="up")) as producer:
        producer.put(np.arange(9.0).reshape(3, 3), table)
        producer.put({"c": 1}, corrupted)
    records = producer.extract_provenance_data().datastore_record_data()
    env.backdoor.corrupt(corrupted)
    quantum = env.quantum(inputs=[table, corrupted], outputs=[env.refs.make()], records=records)
    with env.butler(quantum) as butler:
        assert butler.stored_many([table, corrupted]) == {table: True, corrupted: True}
        with pytest.raises(InvalidParameterError, match="bogus"):
            butler.get(table, parameters={"bogus": 1})
        with pytest.raises(InvalidParameterError, match="bogus"):
            butler.getDeferred(table, parameters={"bogus": 1})
        with pytest.raises(DatasetIntegrityError):
            butler.get(corrupted)
        provenance = butler.extract_provenance_data()
    assert provenance.actual_inputs == frozenset()
    # A read that failed on the stored bytes makes the input unavailable, as in daf_butler.
    assert provenance.available_inputs == {table.id}


def test_a_wrong_storage_class_argument_leaves_an_input_available_and_used(env: ButlerEnv) -> None:
    """An unknown or unconvertible storage class is the caller's error, not a missing input."""
    table = env.refs.make("NumpyArray")
    with env.butler(env.quantum(outputs=[table], label="up")) as producer:
        producer.put(np.arange(4.0), table)
    records = producer.extract_provenance_data().datastore_record_data()
    quantum = env.quantum(inputs=[table], outputs=[env.refs.make()], records=records)
    with env.butler(quantum) as butler:
        assert butler.stored(table)
        assert list(butler.get(table)) == [0.0, 1.0, 2.0, 3.0]
        with pytest.raises(UnknownStorageClassError, match="NoSuchStorageClass"):
            butler.get(table, storageClass="NoSuchStorageClass")
        with pytest.raises(StorageClassError, match="StructuredDataDict"):
            butler.get(table, storageClass="StructuredDataDict")
        provenance = butler.extract_provenance_data()
    assert provenance.available_inputs == {table.id}
    assert provenance.actual_inputs == {table.id}
