"""Tests of s3qbb.core.dataset_ref: construction, validation, immutability and derived refs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from s3qbb.core.dataset_ref import DatasetRef, ensure_resolved, validate_run_name
from s3qbb.core.dataset_type import DatasetType
from s3qbb.core.dimensions import DataCoordinate, DimensionUniverse
from s3qbb.core.ids import DatasetIdFactory, DatasetIdGenEnum
from s3qbb.core.storage_class import StorageClassFactory
from s3qbb.errors import (
    AmbiguousDatasetError,
    DataIdError,
    DatasetTypeError,
    NotAComponentError,
    RecordDataError,
    S3qbbError,
    StorageClassError,
)

FIXED_ID = uuid.UUID("11111111-2222-4333-8444-555555555555")
DATA_ID = {"instrument": "Cam", "visit": 1, "detector": 2}


def test_construction_from_mapping(calexp_meta: DatasetType, universe: DimensionUniverse) -> None:
    ref = DatasetRef(calexp_meta, DATA_ID, run="run1", id=FIXED_ID)
    assert ref.datasetType is calexp_meta
    assert isinstance(ref.dataId, DataCoordinate)
    assert ref.dataId == DataCoordinate.standardize(DATA_ID, universe=universe)
    assert ref.dataId.dimensions == calexp_meta.dimensions
    assert ref.run == "run1"
    assert ref.id == FIXED_ID
    assert not ref.isComponent()
    assert not ref.isComposite()
    assert repr(ref) == (
        f"DatasetRef('calexp_meta', {{instrument: 'Cam', detector: 2, visit: 1}}, run='run1', id={FIXED_ID})"
    )
    assert str(ref) == f"calexp_meta@{{instrument: 'Cam', detector: 2, visit: 1}} [run=run1 id={FIXED_ID}]"


def test_construction_from_coordinate(calexp_meta: DatasetType, universe: DimensionUniverse) -> None:
    coord = DataCoordinate.standardize(DATA_ID, universe=universe)
    ref = DatasetRef(calexp_meta, coord, run="run1")
    assert ref.dataId is coord
    # A coordinate with more dimensions is reduced to the dataset type's.
    bigger = DataCoordinate.standardize({**DATA_ID, "skymap": "s", "tract": 3}, universe=universe)
    reduced = DatasetRef(calexp_meta, bigger, run="run1")
    assert reduced.dataId == coord
    assert "skymap" not in reduced.dataId
    # Extra known dimensions in a mapping are dropped too; implied values are kept.
    ref2 = DatasetRef(calexp_meta, {**DATA_ID, "tract": 5, "physical_filter": "g"}, run="run1")
    assert ref2.dataId == coord
    assert ref2.dataId["physical_filter"] == "g"
    assert "tract" not in ref2.dataId


def test_random_ids_by_default(calexp_meta: DatasetType) -> None:
    a = DatasetRef(calexp_meta, DATA_ID, run="run1")
    b = DatasetRef(calexp_meta, DATA_ID, run="run1")
    assert a.id.version == 4
    assert a.id != b.id
    assert a != b


def test_deterministic_ids(calexp_meta: DatasetType) -> None:
    mode = DatasetIdGenEnum.DATAID_TYPE_RUN
    a = DatasetRef(calexp_meta, DATA_ID, run="run1", id_generation_mode=mode)
    b = DatasetRef(calexp_meta, dict(DATA_ID), run="run1", id_generation_mode=mode)
    assert a.id == b.id
    assert a == b
    assert a.id == DatasetIdFactory().makeDatasetId("run1", calexp_meta, a.dataId, mode)
    assert DatasetRef(calexp_meta, DATA_ID, run="run2", id_generation_mode=mode).id != a.id


def test_id_as_str_or_uuid(calexp_meta: DatasetType) -> None:
    from_str = DatasetRef(calexp_meta, DATA_ID, run="r", id=str(FIXED_ID))
    from_hex = DatasetRef(calexp_meta, DATA_ID, run="r", id=FIXED_ID.hex)
    from_uuid = DatasetRef(calexp_meta, DATA_ID, run="r", id=FIXED_ID)
    assert from_str.id == from_hex.id == from_uuid.id == FIXED_ID
    assert isinstance(from_str.id, uuid.UUID)
    assert from_str == from_uuid


@pytest.mark.parametrize("bad", ["not-a-uuid", "", "1234", 12345, 1.5, b"\x00" * 16, object()])
def test_invalid_id(calexp_meta: DatasetType, bad: Any) -> None:
    with pytest.raises(AmbiguousDatasetError) as info:
        DatasetRef(calexp_meta, DATA_ID, run="r", id=bad)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, S3qbbError)


@pytest.mark.parametrize(
    "run",
    [
        "",
        "a//b",
        "..",
        ".",
        "a/../b",
        "a/./b",
        "/abs",
        "trailing/",
        "ctl\x00",
        "tab\tx",
        "nl\n",
        "del\x7f",
        "x" * 257,
    ],
)
def test_invalid_runs(calexp_meta: DatasetType, run: str) -> None:
    with pytest.raises(DataIdError):
        validate_run_name(run)
    with pytest.raises(DataIdError):
        DatasetRef(calexp_meta, DATA_ID, run=run)


@pytest.mark.parametrize("run", [None, 3, b"run"])
def test_non_str_runs(calexp_meta: DatasetType, run: Any) -> None:
    with pytest.raises(DataIdError, match="non-empty str"):
        DatasetRef(calexp_meta, DATA_ID, run=run)


@pytest.mark.parametrize("run", ["run1", "u/someone/run1", "a.b", "...", "x" * 256, "é ü", "a-b_c+d"])
def test_valid_runs(calexp_meta: DatasetType, run: str) -> None:
    assert validate_run_name(run) == run
    assert DatasetRef(calexp_meta, DATA_ID, run=run).run == run


def test_data_id_mismatch_names_the_dataset_type(calexp_meta: DatasetType) -> None:
    with pytest.raises(DataIdError, match="detector") as info:
        DatasetRef(calexp_meta, {"instrument": "Cam", "visit": 1}, run="run1")
    notes = getattr(info.value, "__notes__", [])
    assert any("'calexp_meta'" in note and "'run1'" in note for note in notes), notes
    with pytest.raises(DataIdError, match="'filter'") as info:
        DatasetRef(calexp_meta, {**DATA_ID, "filter": "g"}, run="run1")
    assert any("'calexp_meta'" in note for note in getattr(info.value, "__notes__", []))
    with pytest.raises(DataIdError, match="takes an int"):
        DatasetRef(calexp_meta, {**DATA_ID, "visit": "1"}, run="run1")


def test_data_id_coordinate_missing_dimensions(calexp_meta: DatasetType, universe: DimensionUniverse) -> None:
    coord = DataCoordinate.standardize(instrument="Cam", visit=1, universe=universe)
    with pytest.raises(DataIdError, match="detector") as info:
        DatasetRef(calexp_meta, coord, run="run1")
    assert any("'calexp_meta'" in note for note in getattr(info.value, "__notes__", []))


@pytest.mark.parametrize("data_id", [None, [("instrument", "Cam")], "instrument=Cam"])
def test_data_id_not_a_mapping(calexp_meta: DatasetType, data_id: Any) -> None:
    with pytest.raises(DataIdError, match="'calexp_meta'"):
        DatasetRef(calexp_meta, data_id, run="run1")


def test_dataset_type_must_be_a_dataset_type() -> None:
    with pytest.raises(DatasetTypeError, match="str"):
        DatasetRef("calexp_meta", DATA_ID, run="run1")  # type: ignore[arg-type]


def test_immutability(calexp_meta: DatasetType) -> None:
    ref = DatasetRef(calexp_meta, DATA_ID, run="run1", id=FIXED_ID)
    for attr, value in [
        ("id", uuid.uuid4()),
        ("run", "other"),
        ("dataId", {}),
        ("datasetType", None),
        ("x", 1),
    ]:
        with pytest.raises(AttributeError, match="immutable"):
            setattr(ref, attr, value)
    assert ref.run == "run1"
    assert ref.id == FIXED_ID


def test_hash_and_equality(calexp_meta: DatasetType, universe: DimensionUniverse) -> None:
    a = DatasetRef(calexp_meta, DATA_ID, run="run1", id=FIXED_ID)
    b = DatasetRef(
        DatasetType("calexp_meta", ["visit", "detector"], "StructuredDataDict", universe=DimensionUniverse()),
        {**DATA_ID, "physical_filter": "g"},
        run="run1",
        id=str(FIXED_ID),
    )
    assert a == b
    assert hash(a) == hash(b)
    assert a != a.replace(run="run2")
    assert a != a.replace(id=uuid.uuid4())
    assert a != DatasetRef(calexp_meta, {**DATA_ID, "visit": 9}, run="run1", id=FIXED_ID)
    other_type = DatasetType("calexp_meta2", ["visit", "detector"], "StructuredDataDict", universe=universe)
    assert a != a.replace(datasetType=other_type)
    assert a != FIXED_ID
    assert len({a, b, a.replace(run="run2")}) == 2
    assert {a: 1}[b] == 1


def test_replace(calexp_meta: DatasetType, universe: DimensionUniverse) -> None:
    ref = DatasetRef(calexp_meta, DATA_ID, run="run1", id=FIXED_ID)
    assert ref.replace() == ref
    moved = ref.replace(run="run2", id=FIXED_ID)
    assert (moved.run, moved.id, moved.dataId, moved.datasetType) == (
        "run2",
        FIXED_ID,
        ref.dataId,
        calexp_meta,
    )
    new_id = uuid.uuid4()
    assert ref.replace(id=new_id).id == new_id
    narrower = DatasetType("per_visit", ["visit"], "StructuredDataDict", universe=universe)
    narrowed = ref.replace(datasetType=narrower)
    assert narrowed.dataId.dimensions == narrower.dimensions
    assert narrowed.id == FIXED_ID
    wider = DatasetType("wide", ["visit", "detector", "tract"], "StructuredDataDict", universe=universe)
    with pytest.raises(DataIdError, match="skymap"):
        ref.replace(datasetType=wider)
    with pytest.raises(DataIdError):
        ref.replace(run="a//b")
    assert ref.run == "run1"  # original untouched


def test_component_and_composite_refs(composite: DatasetType) -> None:
    ref = DatasetRef(composite, DATA_ID, run="run1", id=FIXED_ID)
    assert ref.isComposite()
    summary = ref.makeComponentRef("summary")
    assert summary.isComponent()
    assert summary.datasetType == composite.makeComponentDatasetType("summary")
    assert (summary.id, summary.run, summary.dataId) == (FIXED_ID, "run1", ref.dataId)
    parent = summary.makeCompositeRef()
    assert parent == ref
    assert parent.id == FIXED_ID
    with pytest.raises(RuntimeError, match="not a component") as info:
        ref.makeCompositeRef()
    assert isinstance(info.value, NotAComponentError) and isinstance(info.value, DatasetTypeError)
    with pytest.raises(DatasetTypeError, match="'nope'"):
        ref.makeComponentRef("nope")


def test_override_storage_class(universe: DimensionUniverse) -> None:
    dt = DatasetType("values", ["visit"], "StructuredDataList", universe=universe)
    ref = DatasetRef(dt, {"instrument": "Cam", "visit": 1}, run="run1", id=FIXED_ID)
    as_array = ref.overrideStorageClass("NumpyArray")
    assert as_array.datasetType.storageClass.name == "NumpyArray"
    assert (as_array.id, as_array.run, as_array.dataId) == (ref.id, ref.run, ref.dataId)
    assert as_array != ref
    assert as_array.overrideStorageClass("StructuredDataList") == ref
    with pytest.raises(StorageClassError):
        ref.overrideStorageClass("Bytes")


def test_component_ref_with_custom_component_storage_class(universe: DimensionUniverse) -> None:
    factory = StorageClassFactory()
    factory.addFromConfig(
        {
            "Part": {"pytype": "builtins.list"},
            "Whole": {"pytype": "builtins.dict", "components": {"part": "Part"}},
        }
    )
    dt = DatasetType("whole", ["instrument"], "Whole", universe=universe, storage_classes=factory)
    assert dt.makeComponentDatasetType("part", storage_classes=factory).storageClass.name == "Part"
    ref = DatasetRef(dt, {"instrument": "Cam"}, run="run")
    assert ref.makeComponentRef("part").datasetType.storageClass.name == "Part"


def test_ensure_resolved(calexp_meta: DatasetType) -> None:
    ref = DatasetRef(calexp_meta, DATA_ID, run="run1")
    assert ensure_resolved(ref) is ref
    for bad in ["calexp_meta", DATA_ID, ref.dataId, calexp_meta, None, ref.id]:
        with pytest.raises(AmbiguousDatasetError, match="get") as info:
            ensure_resolved(bad, "get")
        assert isinstance(info.value, TypeError)
        assert type(bad).__name__ in str(info.value)
    with pytest.raises(AmbiguousDatasetError) as info:
        ensure_resolved("x" * 1000)
    assert len(str(info.value)) < 400  # the repr is truncated


def test_refs_and_data_ids_sort_as_daf_butler(universe: DimensionUniverse) -> None:
    """daf_butler orders refs by (run, dataset type name, data ID) and data IDs by required values."""
    a = DatasetType("a", ["instrument", "detector"], "StructuredDataDict", universe=universe)
    b = DatasetType("b", ["instrument", "detector"], "StructuredDataDict", universe=universe)
    assert a < b and not b < a
    refs = [
        DatasetRef(b, {"instrument": "Cam", "detector": 1}, run="r1"),
        DatasetRef(a, {"instrument": "Cam", "detector": 2}, run="r1"),
        DatasetRef(a, {"instrument": "Cam", "detector": 1}, run="r2"),
        DatasetRef(a, {"instrument": "Cam", "detector": 1}, run="r1"),
    ]
    ordered = sorted(refs)
    assert [(r.run, r.datasetType.name, r.dataId["detector"]) for r in ordered] == [
        ("r1", "a", 1),
        ("r1", "a", 2),
        ("r1", "b", 1),
        ("r2", "a", 1),
    ]
    one, two = refs[3].dataId, refs[1].dataId
    assert one < two and not two < one and not one < one
    assert sorted([two, one]) == [one, two]


def test_ref_accepts_numpy_integer_data_id_values(calexp_meta: DatasetType) -> None:
    np = pytest.importorskip("numpy")
    data_id = {"instrument": "Cam", "visit": np.int64(3), "detector": np.int16(2)}
    ref = DatasetRef(calexp_meta, data_id, run="r")
    assert type(ref.dataId["visit"]) is int and type(ref.dataId["detector"]) is int
    plain = {"instrument": "Cam", "visit": 3, "detector": 2}
    assert ref == DatasetRef(calexp_meta, plain, run="r", id=ref.id)


def test_replace_takes_daf_butler_keywords(calexp_meta: DatasetType) -> None:
    ref = DatasetRef(calexp_meta, DATA_ID, run="run1", id=FIXED_ID)
    as_yaml = ref.replace(storage_class="StructuredDataDictYaml")
    assert as_yaml.id == FIXED_ID and as_yaml.datasetType.storageClass.name == "StructuredDataDictYaml"
    assert ref.replace(datastore_records=None) == ref == ref.replace(datastore_records=False)
    # As daf_butler: a new run without a new ID makes a new ID.
    moved = ref.replace(run="run2")
    assert moved.run == "run2" and moved.id != FIXED_ID
    with pytest.raises(StorageClassError):
        ref.replace(storage_class="NumpyArray")
    with pytest.raises(RecordDataError, match="carry none"):
        ref.replace(datastore_records={"S3Datastore": object()})
