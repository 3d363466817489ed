"""QuantumBackedButler given bad input: unresolved refs, wrong types, conflicts, bad configs, hostile IDs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from butler_helpers import PREFIX, RUN, ButlerEnv, client_of

from s3qbb.butler import QuantumBackedButler
from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.core.quantum import Quantum
from s3qbb.errors import (
    AmbiguousDatasetError,
    ConfigError,
    DataIdError,
    DatasetExistsError,
    DatasetTypeError,
    StorageClassError,
    UnpredictedDatasetError,
)
from s3qbb.repo import load_repo_config
from s3qbb.testing.faults import RequestCounter

pytestmark = pytest.mark.filterwarnings("ignore::s3qbb.butler.ProvenanceWarning", "ignore::FutureWarning")

# ------------------------------------------------------------ unresolved refs

ENTRY_POINTS: dict[str, Callable[[QuantumBackedButler, Any], Any]] = {
    "get": lambda b, r: b.get(r),
    "get(storageClass)": lambda b, r: b.get(r, storageClass="StructuredDataDict"),
    "getDeferred": lambda b, r: b.getDeferred(r),
    "put": lambda b, r: b.put({"a": 1}, r),
    "stored": lambda b, r: b.stored(r),
    "stored_many": lambda b, r: b.stored_many([r]),
    "markInputUnused": lambda b, r: b.markInputUnused(r),
    "pruneDatasets": lambda b, r: b.pruneDatasets([r], disassociate=False, unstore=True),
    "pruneDatasets(purge)": lambda b, r: b.pruneDatasets([r], disassociate=True, unstore=True, purge=True),
    "getURI": lambda b, r: b.getURI(r),
    "getURI(predict)": lambda b, r: b.getURI(r, predict=True),
    "getURIs": lambda b, r: b.getURIs(r, predict=True),
    "get_many_uris": lambda b, r: b.get_many_uris([r], predict=True, allow_missing=True),
    "getDirect": lambda b, r: b.getDirect(r),
    "getDirectDeferred": lambda b, r: b.getDirectDeferred(r),
    "putDirect": lambda b, r: b.putDirect({"a": 1}, r),
    "datasetExistsDirect": lambda b, r: b.datasetExistsDirect(r),
}


@pytest.mark.parametrize("kind", ["name", "data_id", "dataset_type", "uuid"])
def test_unresolved_refs_are_rejected_everywhere(moto_env: ButlerEnv, kind: str) -> None:
    out = moto_env.refs.make()
    unresolved: Any = {
        "name": out.datasetType.name,
        "data_id": dict(out.dataId.mapping),
        "dataset_type": out.datasetType,
        "uuid": out.id,
    }[kind]
    with moto_env.butler(moto_env.quantum(outputs=[out])) as butler:
        with RequestCounter(client_of(butler)) as counter:
            for name, call in ENTRY_POINTS.items():
                with pytest.raises(AmbiguousDatasetError, match="resolved DatasetRef"):
                    call(butler, unresolved)
                assert counter.total == 0, name
        assert isinstance(AmbiguousDatasetError("x"), TypeError)
        with pytest.raises(AmbiguousDatasetError):
            Quantum(inputs=[unresolved])
        with pytest.raises(AmbiguousDatasetError):
            Quantum(outputs=[unresolved])
        with pytest.raises(AmbiguousDatasetError):
            Quantum(initInputs=[unresolved])
    assert butler.extract_provenance_data().actual_outputs == frozenset()


# -------------------------------------------------------------- dataset types


def test_quantum_refs_disagreeing_with_dataset_types(moto_env: ButlerEnv) -> None:
    out = moto_env.refs.make("StructuredDataDict", name="calexp_meta")
    registry = {"calexp_meta": moto_env.refs.dataset_type("Bytes", name="calexp_meta")}
    with pytest.raises(DatasetTypeError, match="calexp_meta"):
        moto_env.butler(moto_env.quantum(outputs=[out]), dataset_types=registry)
    other_dims = {"calexp_meta": moto_env.refs.dataset_type("StructuredDataDict", "calexp_meta", ("visit",))}
    with pytest.raises(DatasetTypeError):
        moto_env.butler(moto_env.quantum(outputs=[out]), dataset_types=other_dims)
    assert moto_env.all_keys() == []


def test_refs_disagreeing_with_dataset_types_on_get_and_put(moto_env: ButlerEnv) -> None:
    out = moto_env.refs.make("StructuredDataDict", name="catalog")
    registry = {"catalog": out.datasetType}
    imposter_type = moto_env.refs.dataset_type("Bytes", name="catalog")
    imposter = DatasetRef(imposter_type, out.dataId, out.run, id=out.id)
    with moto_env.butler(moto_env.quantum(outputs=[out]), dataset_types=registry) as butler:
        with RequestCounter(client_of(butler)) as counter:
            with pytest.raises(DatasetTypeError):
                butler.put(b"bytes", imposter)
            assert counter.total == 0
        assert not moto_env.backdoor.has_artifact(out)
        butler.put({"right": True}, out)
        with pytest.raises(DatasetTypeError):
            butler.get(imposter)
        with pytest.raises(DatasetTypeError):
            butler.getDeferred(imposter)
        assert butler.get(out) == {"right": True}


def test_from_predicted_checks_dataset_types_on_use(moto_env: ButlerEnv) -> None:
    out = moto_env.refs.make("StructuredDataDict", name="catalog")
    registry = {"catalog": moto_env.refs.dataset_type("NumpyArray", name="catalog")}
    with QuantumBackedButler.from_predicted(
        moto_env.config(), [], [out.id], moto_env.refs.universe, {}, dataset_types=registry, run=RUN
    ) as butler:
        with pytest.raises(DatasetTypeError):
            butler.put({"a": 1}, out)
        assert not moto_env.backdoor.has_artifact(out)


# ------------------------------------------------------------ storage classes


def test_storage_class_override_that_cannot_convert(moto_env: ButlerEnv) -> None:
    upstream = moto_env.refs.make("StructuredDataDict")
    with moto_env.butler(moto_env.quantum(outputs=[upstream], label="up")) as producer:
        producer.put({"d": 1}, upstream)
    records = producer.extract_provenance_data().datastore_record_data()
    quantum = moto_env.quantum(inputs=[upstream], outputs=[moto_env.refs.make()], records=records)
    with moto_env.butler(quantum) as butler:
        butler.stored_many([upstream])
        with RequestCounter(client_of(butler)) as counter:
            with pytest.raises(StorageClassError, match="Bytes"):
                butler.get(upstream, storageClass="Bytes")
            with pytest.raises(StorageClassError, match="NumpyArray"):
                butler.getDeferred(upstream, storageClass="NumpyArray")
            assert counter.total == 0
        provenance = butler.extract_provenance_data()
    assert provenance.actual_inputs == frozenset(), "a rejected read is not a use"


def test_put_of_the_wrong_python_type(moto_env: ButlerEnv) -> None:
    ref = moto_env.refs.make("NumpyArray")
    with moto_env.butler(moto_env.quantum(outputs=[ref])) as butler:
        with RequestCounter(client_of(butler)) as counter:
            with pytest.raises(StorageClassError, match=r"numpy\.ndarray"):
                butler.put({"not": "an array"}, ref)
            with pytest.raises(StorageClassError):
                butler.put("a string", ref)
            assert counter.total == 0
        assert not moto_env.backdoor.has_artifact(ref)
        assert butler.stored(ref) is False
        assert butler.extract_provenance_data().actual_outputs == frozenset()
        butler.put(np.zeros(3), ref)
        np.testing.assert_array_equal(butler.get(ref), np.zeros(3))


def test_double_put_keeps_the_first_copy(env: ButlerEnv) -> None:
    ref = env.refs.make()
    with env.butler(env.quantum(outputs=[ref])) as butler:
        butler.put({"copy": 1}, ref)
        first = env.backdoor.read_artifact(ref)
        with pytest.raises(DatasetExistsError):
            butler.put({"copy": 2}, ref)
        assert env.backdoor.read_artifact(ref) == first
        assert butler.get(ref) == {"copy": 1}
    assert env.records_files(butler.quantum_id).provenance.actual_outputs == {ref.id}


def test_put_of_a_dataset_another_writer_stored(env: ButlerEnv) -> None:
    """The create-only PUT protects an output written by another process (no shared records)."""
    ref = env.refs.make()
    with env.butler(env.quantum(outputs=[ref], label="first")) as first:
        first.put({"writer": "first"}, ref)
    original = env.backdoor.read_artifact(ref)
    with env.butler(env.quantum(outputs=[ref], label="second")) as second:
        with pytest.raises(DatasetExistsError, match="another writer"):
            second.put({"writer": "second"}, ref)
        provenance = second.extract_provenance_data()
    assert provenance.actual_outputs == frozenset()
    assert env.backdoor.read_artifact(ref) == original


# ---------------------------------------------------------------- quanta


def test_quantum_with_duplicate_ids(moto_env: ButlerEnv) -> None:
    ref = moto_env.refs.make()
    with pytest.raises(AmbiguousDatasetError, match="twice"):
        Quantum(inputs=[ref], outputs=[ref])
    with pytest.raises(AmbiguousDatasetError, match="twice"):
        Quantum(inputs=[ref, ref])
    with pytest.raises(AmbiguousDatasetError, match="twice"):
        Quantum(initInputs=[ref], inputs=[ref])
    with pytest.raises(UnpredictedDatasetError, match="both predicted inputs and outputs"):
        QuantumBackedButler.from_predicted(
            moto_env.config(), [ref.id], [ref.id], moto_env.refs.universe, {}, run=RUN
        )


def test_records_of_an_unknown_datastore(moto_env: ButlerEnv) -> None:
    upstream = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[upstream], label="up")) as producer:
        producer.put({"u": 1}, upstream)
    records = producer.extract_provenance_data().datastore_record_data()
    renamed = {"SomeOtherDatastore": records["S3Datastore"]}
    quantum = moto_env.quantum(inputs=[upstream], outputs=[moto_env.refs.make()], records=renamed)
    with pytest.raises(ConfigError, match="SomeOtherDatastore"):
        moto_env.butler(quantum)
    with pytest.raises(ConfigError, match="SomeOtherDatastore"):
        QuantumBackedButler.from_predicted(
            moto_env.config(), [upstream.id], [], moto_env.refs.universe, renamed, run=RUN
        )


# ---------------------------------------------------------------- configs


def _with(config: dict[str, Any], **datastore: Any) -> dict[str, Any]:
    return {**config, "datastore": {**config["datastore"], **datastore}}


BAD_CONFIGS = [
    "unknown datastore class",
    "unknown datastore class path",
    "s3 without root",
    "root not s3",
    "unknown key",
    "no datastore",
    "missing file",
    "missing relative file",
    "directory without config",
    "not a config type",
    "invalid yaml",
    "yaml list",
    "invalid json",
]

CHECKED_WHEN_BUILDING = {"s3 without root", "root not s3"}
"""Cases `load_repo_config` accepts; building the datastore rejects them."""


def _bad_config(case: str, good: dict[str, Any], tmp_path: Path) -> Any:
    files = {
        "invalid yaml": ("broken.yaml", "datastore: [unclosed\n"),
        "yaml list": ("list.yaml", yaml.safe_dump(["a", "b"])),
        "invalid json": ("broken.json", "{not json"),
    }
    if case in files:
        name, text = files[case]
        (tmp_path / name).write_text(text)
        return str(tmp_path / name)
    return {
        "unknown datastore class": _with(good, cls="gcs"),
        "unknown datastore class path": _with(good, cls="my.module.FancyDatastore"),
        "s3 without root": _with(good, root=None),
        "root not s3": _with(good, root="file:///tmp/repo"),
        "unknown key": {**good, "registry": {"db": "sqlite://"}},
        "no datastore": {"cache": {"enabled": False}},
        "missing file": str(tmp_path / "nope.yaml"),
        "missing relative file": "nope/butler.yaml",
        "directory without config": str(tmp_path),
        "not a config type": 42,
    }[case]


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_bad_configurations(moto_env: ButlerEnv, tmp_path: Path, case: str) -> None:
    config = _bad_config(case, moto_env.config(), tmp_path)
    with pytest.raises(ConfigError):
        moto_env.butler(moto_env.quantum(outputs=[moto_env.refs.make()]), config=config)
    if case not in CHECKED_WHEN_BUILDING:
        with pytest.raises(ConfigError):
            load_repo_config(config)
    assert moto_env.all_keys() == []


def test_relative_config_not_on_search_paths(moto_env: ButlerEnv, tmp_path: Path) -> None:
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "repo.yaml").write_text(yaml.safe_dump(moto_env.plain_config()))
    with pytest.raises(ConfigError, match="search_paths"):
        load_repo_config("repo.yaml", search_paths=[str(tmp_path / "elsewhere")])
    assert (
        load_repo_config("repo.yaml", search_paths=[str(tmp_path / "here")]).datastore.root == moto_env.root
    )


@pytest.mark.parametrize("target", ["file", "prefix"])
def test_missing_s3_config(moto_env: ButlerEnv, monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    cfg = moto_env.endpoint.config
    assert cfg.endpoint_url is not None
    monkeypatch.setenv("S3QBB_S3_ENDPOINT_URL", cfg.endpoint_url)
    monkeypatch.setenv("S3QBB_S3_ADDRESSING_STYLE", "path")
    uri = f"s3://{moto_env.endpoint.bucket}/configs/absent/"
    if target == "file":
        uri += "butler.yaml"
    with pytest.raises(ConfigError):
        load_repo_config(uri)


# ---------------------------------------------------------------- hostile IDs

# Hostile but storable (NUL and other control characters are refused when the ref is made).
HOSTILE = [
    "../../../escape",
    "a%2Fb",
    "nul%00byte\u0085",
    "..",
    "/abs",
    "a/b/../c",
    ".",
    "back\\slash",
    "%2e%2e",
]


def test_hostile_data_ids_round_trip_under_the_run_prefix(env: ButlerEnv) -> None:
    refs = [env.refs.make(instrument=value) for value in HOSTILE]
    with env.butler(env.quantum(outputs=refs)) as butler:
        for i, ref in enumerate(refs):
            butler.put({"i": i, "instrument": ref.dataId["instrument"]}, ref)
        for i, ref in enumerate(refs):
            assert butler.get(ref) == {"i": i, "instrument": HOSTILE[i]}
            assert butler.stored(ref)
        uris = {ref: butler.getURI(ref) for ref in refs}
    keys = [env.backdoor.location(ref) for ref in refs]
    assert len(set(keys)) == len(refs)
    for ref, key in zip(refs, keys, strict=True):
        assert key is not None
        assert key.startswith(f"{PREFIX}/{RUN}/"), key
        segments = key.split("/")
        assert not {"", ".", ".."} & set(segments), key
        assert "\x00" not in key and "\\" not in key
        assert uris[ref].path == key
    every_key = env.all_keys()
    assert all(k.startswith(f"{PREFIX}/{RUN}/") for k in every_key), every_key
    assert env.records_files(butler.quantum_id).provenance.actual_outputs == {r.id for r in refs}


def test_dataset_type_named_like_the_records_folder(moto_env: ButlerEnv) -> None:
    ref = moto_env.refs.make(name="_records")
    with moto_env.butler(moto_env.quantum(outputs=[ref])) as butler:
        butler.put({"r": 1}, ref)
        assert butler.get(ref) == {"r": 1}
        key = butler.getURI(ref).path
    assert not key.startswith(f"{PREFIX}/{RUN}/_records/"), key


def test_hostile_run_name_is_rejected_or_contained(moto_env: ButlerEnv) -> None:
    for run in ["../escape", "a/../b", "run\x00nul", "/lead"]:
        with pytest.raises(DataIdError, match="Run name"):
            moto_env.refs.make(run=run)
    assert moto_env.all_keys() == []


def test_uuid_ids_are_preserved(moto_env: ButlerEnv) -> None:
    fixed = uuid.UUID("00000000-0000-4000-8000-000000000001")
    base = moto_env.refs.make()
    ref = DatasetRef(base.datasetType, base.dataId, base.run, id=fixed)
    with moto_env.butler(moto_env.quantum(outputs=[ref])) as butler:
        returned = butler.put({"id": str(fixed)}, ref)
        assert returned.id == fixed and returned.run == RUN
    assert str(fixed) in (moto_env.backdoor.location(ref) or "")
