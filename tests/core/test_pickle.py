"""Pickling and deep copies of the core model: every value type round-trips, in and across processes."""

from __future__ import annotations

import collections
import copy
import multiprocessing
import pickle
import uuid
from concurrent.futures import ProcessPoolExecutor
from types import MappingProxyType
from typing import Any, TypeVar

import pytest

from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.core.dataset_type import DatasetType, default_storage_classes
from s3qbb.core.dimensions import DataCoordinate, DimensionUniverse
from s3qbb.core.ids import DatasetIdFactory, DatasetIdGenEnum
from s3qbb.core.quantum import Quantum
from s3qbb.core.records import DatastoreRecordData, StoredFileInfo
from s3qbb.core.storage_class import StorageClass, StorageClassFactory
from s3qbb.core.uri import DatasetRefURIs, ResourceURI

_T = TypeVar("_T")
PROTOCOLS = list(range(2, pickle.HIGHEST_PROTOCOL + 1))
DATA_ID = {"instrument": "Cam", "visit": 42, "detector": 7}
REF_ID = uuid.UUID("0b5e8c4e-9a0d-4f4e-8a55-4f3c2d1b0a99")
QUANTUM_ID = uuid.UUID("5f1d0c8a-2b7e-4c3d-9e6f-0a1b2c3d4e5f")
LAB_UNIVERSE = {
    "namespace": "lab",
    "version": 3,
    "dimensions": {
        "telescope": {"type": "str"},
        "night": {"type": "int", "requires": ["telescope"]},
        "frame": {"type": "int", "requires": ["telescope"], "implies": ["night"]},
    },
}
CUSTOM_CLASSES = {
    "Spectrum": {
        "pytype": "builtins.dict",
        "formatter": "json",
        "parameters": ["rows", "band"],
        "components": {"flux": "StructuredDataList", "meta": "StructuredDataDict"},
        "converters": {"builtins.list": "builtins.dict"},
        "parameter_handler": "s3qbb.core.storage_class._rows_handler",
    },
}


def _custom_factory() -> StorageClassFactory:
    factory = StorageClassFactory.default()
    factory.addFromConfig(CUSTOM_CLASSES)
    return factory


def _records(ref: DatasetRef) -> DatastoreRecordData:
    info = StoredFileInfo(ref.id, f"{ref.run}/a.npy", "s3qbb.formatters.npy.NpyFormatter", "NumpyArray", None,
                          "CRC32C:AAAAAA==", 128)  # fmt: skip
    component = StoredFileInfo(
        ref.id, f"{ref.run}/a.meta.json", "json", "StructuredDataDict", "meta", None, -1
    )
    return DatastoreRecordData({ref.id: {"file_datastore_records": [info, component]}})


def _build_refs(universe: DimensionUniverse) -> dict[str, DatasetRef]:
    """Make the same refs in any process (fixed IDs), for comparisons across processes."""
    calexp = DatasetType("calexp", ["visit", "detector"], "NumpyArray", universe=universe)
    composite = DatasetType("result", ["visit", "detector"], "StructuredComposite", universe=universe)
    bias = DatasetType("bias", ["detector"], "Bytes", universe=universe, isCalibration=True)
    spectrum = DatasetType(
        "spectrum", ["visit"], "Spectrum", universe=universe, storage_classes=_custom_factory()
    )
    result = DatasetRef(composite, DATA_ID, run="u/alice/run1", id=REF_ID)
    return {
        "calexp": DatasetRef(
            calexp, DATA_ID, run="run1", id_generation_mode=DatasetIdGenEnum.DATAID_TYPE_RUN
        ),
        "result": result,
        "component": result.makeComponentRef("summary"),
        "bias": DatasetRef(
            bias, {"instrument": "Cam", "detector": 7}, run="calib/2024", id=uuid.UUID(int=REF_ID.int + 3)
        ),
        "spectrum": DatasetRef(
            spectrum, {"instrument": "Cam", "visit": 42}, run="run1", id=uuid.UUID(int=REF_ID.int + 1)
        ),
    }


def _build_quantum(universe: DimensionUniverse, refs: dict[str, DatasetRef]) -> Quantum:
    config = DatasetType("isr_config", [], "StructuredDataDict", universe=universe)
    init = DatasetRef(config, {}, run="run1", id=uuid.UUID(int=REF_ID.int + 2))
    return Quantum(
        taskName="pkg.module.IsrTask",
        taskLabel="isr",
        dataId=DataCoordinate.standardize(DATA_ID, universe=universe),
        initInputs=[init],
        inputs={refs["bias"].datasetType: [refs["bias"]], refs["spectrum"].datasetType: [refs["spectrum"]]},
        outputs=[refs["calexp"], refs["result"]],
        datastore_records={"s3": _records(refs["bias"]), "other": DatastoreRecordData()},
        id=QUANTUM_ID,
    )


def _values() -> dict[str, Any]:
    universe = DimensionUniverse()
    lab = DimensionUniverse(LAB_UNIVERSE)
    refs = _build_refs(universe)
    shipped = default_storage_classes()
    return {
        "universe": universe,
        "custom universe": lab,
        "dimension group": universe.conform(["visit", "detector"]),
        "data ID": DataCoordinate.standardize(DATA_ID, universe=universe),
        "full data ID": DataCoordinate.standardize(
            {**DATA_ID, "band": "r", "physical_filter": "r1", "day_obs": 20240101}, universe=universe
        ),
        "custom data ID": DataCoordinate.standardize(telescope="T", frame=5, night=3, universe=lab),
        "empty data ID": DataCoordinate.makeEmpty(universe),
        "storage class with converters": shipped.getStorageClass("NumpyArray"),
        "storage class with components": shipped.getStorageClass("StructuredComposite"),
        "custom storage class": _custom_factory().getStorageClass("Spectrum"),
        "storage class of a type": StorageClass("Ordered", collections.OrderedDict, formatter="json"),
        "storage class of an unimportable type": StorageClass("Later", "not_installed_pkg.Thing"),
        "dataset type": refs["calexp"].datasetType,
        "calibration dataset type": refs["bias"].datasetType,
        "composite dataset type": refs["result"].datasetType,
        "component dataset type": refs["component"].datasetType,
        "dataset type of a custom factory": refs["spectrum"].datasetType,
        "dataset type of a custom universe": DatasetType(
            "frame_meta", ["frame"], "StructuredDataDict", universe=lab
        ),
        **{f"ref {name}": ref for name, ref in refs.items()},
        "quantum": _build_quantum(universe, refs),
        "bare quantum": Quantum(),
        "URIs": DatasetRefURIs(ResourceURI("s3://bucket/run1/a.npy")),
        "component URIs": DatasetRefURIs(
            None, {"summary": ResourceURI("s3://b/run1/a.summary.json#predicted")}
        ),
        "resource URI": ResourceURI.for_key("s3", "bucket", "run/g%2Fr.json"),
        "stored file info": _records(refs["bias"]).records[refs["bias"].id]["file_datastore_records"][0],
        "datastore record data": _records(refs["bias"]),
        "dataset ID": REF_ID,
        "ID generation mode": DatasetIdGenEnum.DATAID_TYPE_RUN,
    }


VALUES = _values()


def _check_same(back: Any, original: Any) -> None:
    assert type(back) is type(original)
    assert back == original
    assert original == back
    assert (back != original) is False
    assert repr(back) == repr(original)
    if type(original).__hash__ is not None and not isinstance(original, DatasetRefURIs):
        assert hash(back) == hash(original)
        assert back in {original}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", list(VALUES))
def test_pickle_round_trip(name: str, protocol: int) -> None:
    original = VALUES[name]
    _check_same(pickle.loads(pickle.dumps(original, protocol=protocol)), original)


@pytest.mark.parametrize("name", list(VALUES))
def test_deepcopy(name: str) -> None:
    original = VALUES[name]
    _check_same(copy.deepcopy(original), original)
    _check_same(copy.copy(original), original)


def _round_trips(value: _T) -> list[_T]:
    return [copy.deepcopy(value)] + [pickle.loads(pickle.dumps(value, protocol=p)) for p in PROTOCOLS]


def test_storage_class_details() -> None:
    originals: list[StorageClass] = [VALUES["custom storage class"], VALUES["storage class with converters"]]
    for original in originals:
        for back in _round_trips(original):
            assert back.to_config() == original.to_config()
            assert back.pytype is original.pytype
            assert isinstance(back.components, MappingProxyType)
            assert isinstance(back.converters, MappingProxyType)
            with pytest.raises(TypeError):
                back.components["x"] = "y"  # type: ignore[index]
            with pytest.raises(TypeError):
                back.converters["x"] = "y"  # type: ignore[index]
    ordered = VALUES["storage class of a type"]
    assert all(back.pytype is collections.OrderedDict for back in _round_trips(ordered))
    later = VALUES["storage class of an unimportable type"]
    assert all(back.pytype_name == "not_installed_pkg.Thing" for back in _round_trips(later))


def test_shipped_storage_classes_unpickle_to_the_shared_instances() -> None:
    shipped = default_storage_classes()
    for name in shipped.names():
        for source in (shipped, StorageClassFactory.default()):
            for back in _round_trips(source.getStorageClass(name)):
                assert back is shipped.getStorageClass(name)
    # Same name, another definition: an equal new instance, not the shipped one.
    other = StorageClass("NumpyArray", "builtins.list", formatter="json")
    for back in _round_trips(other):
        assert back == other and back is not shipped.getStorageClass("NumpyArray")
        assert back != shipped.getStorageClass("NumpyArray")


def test_storage_class_factory() -> None:
    factory = _custom_factory()
    for back in _round_trips(factory):
        assert isinstance(back, StorageClassFactory) and back is not factory
        assert back.names() == factory.names()
        for name in factory.names():
            assert back.getStorageClass(name) == factory.getStorageClass(name)
        back.addFromConfig({"Extra": {"pytype": "builtins.str"}})  # a working lock and registry
        assert "Extra" not in factory


def test_dataset_type_details() -> None:
    component: DatasetType = VALUES["component dataset type"]
    for back in _round_trips(component):
        assert back.parentStorageClass == component.parentStorageClass
        assert back.parentStorageClass is default_storage_classes().getStorageClass("StructuredComposite")
        assert back.makeCompositeDatasetType() == VALUES["composite dataset type"]
        assert back.isCalibration() is False
        with pytest.raises(AttributeError):
            back.name = "other"
    assert all(back.isCalibration() for back in _round_trips(VALUES["calibration dataset type"]))
    # The custom factory travels: the components of a custom storage class still resolve.
    spectrum: DatasetType = VALUES["dataset type of a custom factory"]
    for back in _round_trips(spectrum):
        assert back.makeComponentDatasetType("flux") == spectrum.makeComponentDatasetType("flux")
        assert back.storageClass.to_config() == CUSTOM_CLASSES["Spectrum"] | {"parameters": ["band", "rows"]}


def test_ref_details() -> None:
    for name in ("ref calexp", "ref result", "ref component", "ref bias", "ref spectrum"):
        original: DatasetRef = VALUES[name]
        for back in _round_trips(original):
            assert (back.id, back.run, back.dataId, back.datasetType) == (
                original.id,
                original.run,
                original.dataId,
                original.datasetType,
            )
            assert back.dataId.mapping == original.dataId.mapping
            assert back.dataId.dimensions.required == original.dataId.dimensions.required
            assert back.isComponent() == original.isComponent()
            with pytest.raises(AttributeError):
                back.run = "x"
    for back in _round_trips(VALUES["ref result"]):
        assert back.makeComponentRef("data") == VALUES["ref result"].makeComponentRef("data")
    for back in _round_trips(VALUES["ref component"]):
        assert back.makeCompositeRef() == VALUES["ref result"]


def test_data_id_details() -> None:
    full: DataCoordinate = VALUES["full data ID"]
    for back in _round_trips(full):
        assert back.hasFull() and dict(back.mapping) == dict(full.mapping)
        assert back.dimensions.universe.conform(["visit"]) is back.dimensions.universe.conform(["visit"])
        with pytest.raises(TypeError):
            back.mapping["visit"] = 1  # type: ignore[index]
        with pytest.raises(AttributeError):
            back._values = {}


def test_quantum_details() -> None:
    original: Quantum = VALUES["quantum"]
    for back in _round_trips(original):
        assert (back.id, back.taskName, back.taskLabel, back.dataId) == (
            original.id,
            original.taskName,
            original.taskLabel,
            original.dataId,
        )
        for role in ("initInputs", "inputs", "outputs"):
            assert list(getattr(back, role).items()) == list(getattr(original, role).items())
        assert back.inputs["bias"] == original.inputs["bias"]
        assert back.input_refs() == original.input_refs()
        assert back.output_refs() == original.output_refs()
        assert dict(back.datastore_records) == dict(original.datastore_records)
        assert isinstance(back.datastore_records, MappingProxyType)
        with pytest.raises(TypeError):
            back.datastore_records["x"] = DatastoreRecordData()  # type: ignore[index]
    # Quantum equality: ID and definition, not datastore records.
    assert original != Quantum(taskLabel="isr", id=QUANTUM_ID)
    assert original.with_datastore_records({"s3": _records(VALUES["ref calexp"])}) == original


def test_uris_details() -> None:
    original: DatasetRefURIs = VALUES["component URIs"]
    for back in _round_trips(original):
        assert back.primaryURI is None
        assert dict(back.componentURIs) == dict(original.componentURIs)
        assert isinstance(back.componentURIs, MappingProxyType)
        assert back.componentURIs["summary"].is_predicted
        primary, components = back  # still the pair daf_butler's DatasetRefURIs unpacks to
        assert primary is None and components == original.componentURIs
        with pytest.raises(TypeError):
            back.componentURIs["x"] = ResourceURI("s3://b/x")  # type: ignore[index]


def test_mappingproxy_stays_unpicklable() -> None:
    """The fix is per class: pickle's treatment of mappingproxy in the user's process is unchanged."""
    with pytest.raises(TypeError, match="mappingproxy"):
        pickle.dumps(MappingProxyType({"a": 1}))


def _worker(refs: dict[str, DatasetRef], quantum: Quantum) -> dict[str, Any]:
    """Run in a spawned process: compare what arrived with the same values built here, and return both."""
    universe = DimensionUniverse()
    local_refs = _build_refs(universe)
    local_quantum = _build_quantum(universe, local_refs)
    shipped = default_storage_classes()
    return {
        "refs": refs,
        "quantum": quantum,
        "equal to local refs": {name: refs[name] == ref for name, ref in local_refs.items()},
        # Hashes are per process (str hashing is salted): the received refs must hash as local ones do.
        "found by hash": {name: ref in {refs[name]} for name, ref in local_refs.items()},
        "quantum equal": quantum == local_quantum and quantum in {local_quantum},
        "records equal": dict(quantum.datastore_records) == dict(local_quantum.datastore_records),
        "shared storage class": refs["calexp"].datasetType.storageClass
        is shipped.getStorageClass("NumpyArray"),
        "component ref": refs["result"].makeComponentRef("data"),
        "output ids": [ref.id for ref in quantum.output_refs()],
        "visits": sorted(ref.dataId["visit"] for ref in quantum.output_refs()),
        "ref by id": {ref.id: ref for ref in quantum.input_refs()},
    }


def test_process_pool_spawn() -> None:
    universe = DimensionUniverse()
    refs = _build_refs(universe)
    quantum = _build_quantum(universe, refs)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        out = pool.submit(_worker, refs, quantum).result(timeout=120)
    assert out["equal to local refs"] == dict.fromkeys(refs, True)
    assert out["found by hash"] == dict.fromkeys(refs, True)
    assert out["quantum equal"] is True
    assert out["records equal"] is True
    assert out["shared storage class"] is True
    for name, ref in refs.items():
        _check_same(out["refs"][name], ref)
    _check_same(out["quantum"], quantum)
    assert dict(out["quantum"].datastore_records) == dict(quantum.datastore_records)
    _check_same(out["component ref"], refs["result"].makeComponentRef("data"))
    assert out["output ids"] == [ref.id for ref in quantum.output_refs()]
    assert out["visits"] == [42, 42]
    assert out["ref by id"] == {ref.id: ref for ref in quantum.input_refs()}


def test_id_factory() -> None:
    factory = DatasetIdFactory(uuid.UUID(int=99))
    ref = VALUES["ref calexp"]
    mode = DatasetIdGenEnum.DATAID_TYPE_RUN
    expected = factory.makeDatasetId(ref.run, ref.datasetType, ref.dataId, mode)
    for back in _round_trips(factory):
        assert back.makeDatasetId(ref.run, ref.datasetType, ref.dataId, mode) == expected


def test_values_cover_core_types() -> None:
    """Every public type of s3qbb.core is in the round-trip table or has its own test above."""
    import s3qbb.core as core

    covered = {type(value) for value in VALUES.values()} | {DatasetIdFactory, StorageClassFactory}
    missing = [name for name in core.__all__ if getattr(core, name) not in covered]
    assert missing == []
