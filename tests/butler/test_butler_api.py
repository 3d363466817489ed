"""QuantumBackedButler: every method and attribute of the seed API, on moto and on SeaweedFS."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from butler_helpers import PREFIX, RUN, ButlerEnv, client_of

from s3qbb.butler import DeferredDatasetHandle, FinishResult, LimitedButler, QuantumBackedButler
from s3qbb.core.uri import DatasetRefURIs, ResourceURI
from s3qbb.errors import DatasetNotFoundError
from s3qbb.provenance import QuantumProvenanceData
from s3qbb.repo import RepoConfig
from s3qbb.testing.data import ExampleModel, sample_object
from s3qbb.testing.faults import RequestCounter

pytestmark = pytest.mark.filterwarnings("ignore::s3qbb.butler.ProvenanceWarning")

ROUND_TRIP_CLASSES = ["StructuredDataDict", "StructuredDataList", "Bytes", "NumpyArray", "ExampleModel"]


def _assert_same(storage_class: str, got: Any, expected: Any) -> None:
    if storage_class == "NumpyArray":
        np.testing.assert_array_equal(got, expected)
    else:
        assert type(got) is type(expected)
        assert got == expected


# --------------------------------------------------------------- attributes


def test_generation_dimensions_and_writeable(moto_env: ButlerEnv) -> None:
    out = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[out])) as butler:
        assert QuantumBackedButler.GENERATION == 3
        assert butler.GENERATION == 3
        assert isinstance(butler, LimitedButler)
        assert butler.dimensions is moto_env.refs.universe
        assert butler.isWriteable() is True
        assert "visit" in butler.dimensions.names and "detector" in butler.dimensions


# ---------------------------------------------------------- construction


def test_round_trip_every_storage_class(cache_env: ButlerEnv) -> None:
    """Put then get one dataset of each storage class; the objects land under the run prefix."""
    refs = {sc: cache_env.refs.make(sc) for sc in ROUND_TRIP_CLASSES}
    samples = {sc: sample_object(sc) for sc in ROUND_TRIP_CLASSES}
    with cache_env.butler(cache_env.quantum(outputs=refs.values())) as butler:
        for sc, ref in refs.items():
            assert butler.put(samples[sc], ref) is ref
        for sc, ref in refs.items():
            _assert_same(sc, butler.get(ref), samples[sc])
            assert butler.stored(ref)
    for ref in refs.values():
        key = cache_env.backdoor.location(ref)
        assert key is not None and key.startswith(f"{PREFIX}/{RUN}/")


def test_initialize_from_repo_config_model(moto_env: ButlerEnv) -> None:
    config = RepoConfig.model_validate(moto_env.config())
    out = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[out]), config=config) as butler:
        butler.put({"a": 1}, out)
        assert butler.get(out) == {"a": 1}
    assert moto_env.backdoor.has_artifact(out)


def test_initialize_from_yaml_file(env: ButlerEnv, tmp_path: Path) -> None:
    path = tmp_path / "butler.yaml"
    path.write_text(yaml.safe_dump(env.plain_config()))
    out = env.refs.make()
    config: str | Path = path if env.endpoint.name == "moto" else str(path)  # both kinds of path
    with env.butler(env.quantum(outputs=[out]), config=config) as butler:
        butler.put({"yaml": True}, out)
        assert butler.get(out) == {"yaml": True}
    assert env.backdoor.has_artifact(out)


def test_initialize_from_json_file(env: ButlerEnv, tmp_path: Path) -> None:
    path = tmp_path / "repo.json"
    path.write_text(json.dumps(env.plain_config()))
    out = env.refs.make()
    with env.butler(env.quantum(outputs=[out]), config=str(path)) as butler:
        butler.put({"json": True}, out)
    assert env.backdoor.has_artifact(out)


def test_initialize_from_directory_holding_butler_yaml(moto_env: ButlerEnv, tmp_path: Path) -> None:
    (tmp_path / "butler.yaml").write_text(yaml.safe_dump(moto_env.plain_config()))
    out = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[out]), config=tmp_path) as butler:
        butler.put({"dir": True}, out)
    assert moto_env.backdoor.has_artifact(out)


@pytest.mark.parametrize("target", ["file", "prefix"])
def test_initialize_from_s3_uri(env: ButlerEnv, monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    """A configuration uploaded to the bucket is read with the environment's endpoint."""
    cfg = env.endpoint.config
    assert cfg.secret_access_key is not None and cfg.access_key_id is not None and cfg.endpoint_url
    monkeypatch.setenv("S3QBB_S3_ENDPOINT_URL", cfg.endpoint_url)
    monkeypatch.setenv("S3QBB_S3_ADDRESSING_STYLE", "path")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", cfg.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", cfg.secret_access_key.get_secret_value())
    uri = env.put_text("configs/repo1/butler.yaml", yaml.safe_dump(env.plain_config()))
    location = uri if target == "file" else uri.removesuffix("butler.yaml")
    out = env.refs.make()
    with env.butler(env.quantum(outputs=[out]), config=location) as butler:
        butler.put({"s3": True}, out)
        assert butler.get(out) == {"s3": True}
    assert env.backdoor.has_artifact(out)


def test_initialize_relative_path_found_through_search_paths(
    moto_env: ButlerEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "configs" / "deep"
    elsewhere.mkdir(parents=True)
    (elsewhere / "my_repo.yaml").write_text(yaml.safe_dump(moto_env.plain_config()))
    out = moto_env.refs.make()
    quantum = moto_env.quantum(outputs=[out])
    with moto_env.butler(
        quantum, config="my_repo.yaml", search_paths=[str(tmp_path / "nothing_here"), str(elsewhere)]
    ) as butler:
        butler.put({"searched": True}, out)
    assert moto_env.backdoor.has_artifact(out)


def test_manager_class_arguments_are_accepted_with_a_warning(moto_env: ButlerEnv) -> None:
    out = moto_env.refs.make()
    with (
        pytest.warns(UserWarning, match="OpaqueManagerClass"),
        moto_env.butler(moto_env.quantum(outputs=[out]), OpaqueManagerClass=object) as butler,
    ):
        butler.put({"a": 1}, out)
    assert moto_env.backdoor.has_artifact(out)


def test_from_predicted(env: ButlerEnv) -> None:
    """Butler built from ID sets: reads inputs through imported records, writes outputs, uploads under run."""
    producer_out = env.refs.make()
    with env.butler(env.quantum(outputs=[producer_out], label="producer")) as producer:
        producer.put({"made": "upstream"}, producer_out)
    records = producer.extract_provenance_data().datastore_record_data()

    out = env.refs.make("StructuredDataList")
    quantum_id = uuid.uuid4()
    with QuantumBackedButler.from_predicted(
        env.config(),
        predicted_inputs=[producer_out.id],
        predicted_outputs=[out.id],
        dimensions=env.refs.universe,
        datastore_records=records,
        quantum_id=quantum_id,
        run=RUN,
    ) as butler:
        assert butler.quantum_id == quantum_id
        assert butler.stored_many([producer_out]) == {producer_out: True}
        assert butler.get(producer_out) == {"made": "upstream"}
        butler.put([1, 2, 3], out)
        provenance = butler.extract_provenance_data()
    assert provenance.predicted_inputs == {producer_out.id}
    assert provenance.actual_inputs == {producer_out.id}
    assert provenance.actual_outputs == {out.id}
    files = env.records_files(quantum_id)
    assert files.provenance == provenance
    assert files.report.status == "succeeded"


def test_from_predicted_uploads_under_the_outputs_run(moto_env: ButlerEnv) -> None:
    out = moto_env.refs.make(run="derived_run")
    with QuantumBackedButler.from_predicted(
        moto_env.config(), [], [out.id], moto_env.refs.universe, {}
    ) as butler:
        butler.put({"d": 1}, out)
    assert butler.finish().status == "succeeded"
    files = moto_env.records_files(butler.quantum_id, run="derived_run")
    assert files.provenance.actual_outputs == {out.id}
    assert files.report.run == "derived_run"


# ------------------------------------------------------------------ reads


def test_get_parameters_component_and_storage_class_override(env: ButlerEnv) -> None:
    array_ref = env.refs.make("NumpyArray")
    composite_ref = env.refs.make("StructuredComposite")
    array = sample_object("NumpyArray")
    composite = sample_object("StructuredComposite")
    with env.butler(env.quantum(outputs=[array_ref, composite_ref])) as butler:
        butler.put(array, array_ref)
        butler.put(composite, composite_ref)
        np.testing.assert_array_equal(butler.get(array_ref, parameters={"rows": slice(2, 5)}), array[2:5])
        as_list = butler.get(array_ref, storageClass="StructuredDataList")
        assert isinstance(as_list, list) and as_list == array.tolist()
        summary = butler.get(composite_ref.makeComponentRef("summary"))
        assert summary == composite["summary"]
        assert butler.get(composite_ref.makeComponentRef("data")) == composite["data"]


def test_get_deferred_handle(env: ButlerEnv) -> None:
    array_ref = env.refs.make("NumpyArray")
    composite_ref = env.refs.make("StructuredComposite")
    array = sample_object("NumpyArray")
    composite = sample_object("StructuredComposite")
    with env.butler(env.quantum(outputs=[array_ref, composite_ref])) as butler:
        butler.put(array, array_ref)
        butler.put(composite, composite_ref)
        handle = butler.getDeferred(array_ref, parameters={"rows": slice(0, 4)})
        assert isinstance(handle, DeferredDatasetHandle)
        assert handle.ref == array_ref
        assert handle.dataId == array_ref.dataId
        np.testing.assert_array_equal(handle.get(), array[0:4])
        np.testing.assert_array_equal(handle.get(parameters={"rows": slice(10, 12)}), array[10:12])
        assert handle.get(storageClass="StructuredDataList") == array[0:4].tolist()
        listed = butler.getDeferred(array_ref, storageClass="StructuredDataList")
        assert listed.get() == array.tolist()
        comp = butler.getDeferred(composite_ref)
        assert comp.get(component="output") == composite["output"]
        assert comp.get() == composite
        with pytest.raises(KeyError, match="no component 'nope'"):  # daf_butler's UnknownComponentError
            comp.get(component="nope")


def test_stored_and_stored_many(env: ButlerEnv) -> None:
    written, unwritten = env.refs.make(), env.refs.make()
    with env.butler(env.quantum(outputs=[written, unwritten])) as butler:
        assert butler.stored(written) is False
        butler.put({"w": 1}, written)
        assert butler.stored(written) is True
        assert butler.stored(unwritten) is False
        result = butler.stored_many([written, unwritten])
        assert result == {written: True, unwritten: False}
        assert list(result) == [written, unwritten]
        env.backdoor.delete_artifact(written)
        assert butler.stored(written) is False, "stored() must check storage, not only records"
        assert butler.stored_many([written]) == {written: False}


# ------------------------------------------------------------------- URIs


def test_get_uri_predicted_costs_no_request_then_plain(env: ButlerEnv) -> None:
    ref = env.refs.make()
    with env.butler(env.quantum(outputs=[ref])) as butler:
        with RequestCounter(client_of(butler)) as counter:
            predicted = butler.getURI(ref, predict=True)
            predicted_uris = butler.getURIs(ref, predict=True)
            assert counter.total == 0
        assert isinstance(predicted, ResourceURI)
        assert predicted.endswith("#predicted") and predicted.is_predicted
        assert predicted_uris.primaryURI == predicted
        with pytest.raises(DatasetNotFoundError):
            butler.getURI(ref)
        with pytest.raises(FileNotFoundError):
            butler.getURIs(ref)
        butler.put({"u": 1}, ref)
        uri = butler.getURI(ref)
        assert not uri.is_predicted and "#" not in uri
        assert uri == predicted.unpredicted()
        assert uri.scheme == "s3" and uri.netloc == env.endpoint.bucket
        assert uri.path == env.backdoor.location(ref)
        uris = butler.getURIs(ref)
        assert isinstance(uris, DatasetRefURIs)
        assert uris.primaryURI == uri and dict(uris.componentURIs) == {}


def test_get_many_uris(env: ButlerEnv) -> None:
    written, unwritten = env.refs.make(), env.refs.make("NumpyArray")
    with env.butler(env.quantum(outputs=[written, unwritten])) as butler:
        butler.put({"m": 1}, written)
        with pytest.raises(FileNotFoundError):
            butler.get_many_uris([written, unwritten])
        predicted = butler.get_many_uris([written, unwritten], predict=True)
        assert set(predicted) == {written, unwritten}
        assert predicted[written].primaryURI == butler.getURI(written)
        unwritten_uri = predicted[unwritten].primaryURI
        assert unwritten_uri is not None and unwritten_uri.is_predicted
        assert unwritten_uri.endswith(".npy#predicted")
        present = butler.get_many_uris([written, unwritten], allow_missing=True)
        assert set(present) == {written}
        assert present[written].primaryURI == butler.getURI(written)


def test_datastore_names_and_roots(env: ButlerEnv) -> None:
    with env.butler(env.quantum(outputs=[env.refs.make()])) as butler:
        names = butler.get_datastore_names()
        assert isinstance(names, tuple) and names == ("S3Datastore",)
        roots = butler.get_datastore_roots()
        assert roots == {"S3Datastore": env.root.rstrip("/") + "/"}  # a folder, as daf_butler's
        assert isinstance(roots["S3Datastore"], ResourceURI)


def test_datastore_name_from_config(moto_env: ButlerEnv) -> None:
    config = moto_env.config()
    config["datastore"]["name"] = "MyStore"
    with moto_env.butler(moto_env.quantum(outputs=[moto_env.refs.make()]), config=config) as butler:
        assert butler.get_datastore_names() == ("MyStore",)
        assert set(butler.get_datastore_roots()) == {"MyStore"}


# ------------------------------------------------------------- provenance


def test_extract_provenance_data(env: ButlerEnv) -> None:
    upstream = [env.refs.make() for _ in range(3)]
    with env.butler(env.quantum(outputs=upstream, label="up")) as producer:
        for i, ref in enumerate(upstream):
            producer.put({"i": i}, ref)
    records = producer.extract_provenance_data().datastore_record_data()
    used, unused, never_read = upstream
    outs = [env.refs.make(), env.refs.make()]
    quantum = env.quantum(inputs=upstream, outputs=outs, records=records)
    with env.butler(quantum) as butler:
        butler.stored_many(upstream)
        butler.get(used)
        butler.get(unused)
        butler.markInputUnused(unused)
        butler.put({"o": 1}, outs[0])
        provenance = butler.extract_provenance_data()
    assert isinstance(provenance, QuantumProvenanceData)
    assert provenance.predicted_inputs == {r.id for r in upstream}
    assert provenance.available_inputs == {r.id for r in upstream}
    assert provenance.actual_inputs == {used.id}
    assert never_read.id not in provenance.actual_inputs
    assert provenance.predicted_outputs == {r.id for r in outs}
    assert provenance.actual_outputs == {outs[0].id}
    assert set(provenance.datastore_records) == {"S3Datastore"}
    assert set(provenance.datastore_records["S3Datastore"].dataset_ids) == {outs[0].id}


# -------------------------------------------------------------- lifecycle


def test_context_manager_finish_and_close(env: ButlerEnv) -> None:
    out = env.refs.make()
    butler = env.butler(env.quantum(outputs=[out]))
    with butler as entered:
        assert entered is butler
        butler.put({"c": 1}, out)
    first = butler.finish()
    assert isinstance(first, FinishResult)
    assert first.status == "succeeded"
    assert butler.finish() is first, "finish() is idempotent"
    assert len(first.uris) == 3
    keys = set(env.all_keys())
    assert {u.path for u in first.uris} == set(env.records_keys(butler.quantum_id))
    assert {u.path for u in first.uris} <= keys
    assert butler.extract_provenance_data().actual_outputs == {out.id}


def test_explicit_finish_without_context_manager(moto_env: ButlerEnv) -> None:
    out = moto_env.refs.make()
    butler = moto_env.butler(moto_env.quantum(outputs=[out]))
    butler.put({"f": 1}, out)
    result = butler.finish()
    assert result.status == "succeeded"
    assert set(moto_env.records_keys(butler.quantum_id)) <= set(moto_env.all_keys())


def test_close_does_not_upload(moto_env: ButlerEnv) -> None:
    out = moto_env.refs.make()
    butler = moto_env.butler(moto_env.quantum(outputs=[out]))
    butler.put({"x": 1}, out)
    butler.close()
    assert moto_env.backdoor.has_artifact(out)
    assert not any("/_records/" in k for k in moto_env.all_keys())


def test_example_model_round_trip_through_handle(moto_env: ButlerEnv) -> None:
    ref = moto_env.refs.make("ExampleModel")
    model = ExampleModel(name="n", values=[0.5])
    with moto_env.butler(moto_env.quantum(outputs=[ref])) as butler:
        butler.put(model, ref)
        assert butler.getDeferred(ref).get() == model
