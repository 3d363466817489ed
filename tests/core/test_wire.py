"""Tests of s3qbb.core.wire: golden files, version checks and round trips.

The golden files under ``golden/`` were written once by running this module
as a script (``.venv/bin/python tests/core/test_wire.py``) from the objects
built below, all with fixed UUIDs. Do not regenerate them to make a failing
test pass: a golden file changing means the wire format changed.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.core.dataset_type import DatasetType
from s3qbb.core.dimensions import DataCoordinate, DimensionUniverse
from s3qbb.core.quantum import Quantum
from s3qbb.core.records import DatastoreRecordData, StoredFileInfo
from s3qbb.core.storage_class import StorageClass, StorageClassFactory
from s3qbb.core.wire import (
    WIRE_VERSION,
    SerializedDataCoordinate,
    SerializedDatasetRef,
    SerializedDatasetType,
    SerializedDimensionUniverse,
    SerializedQuantum,
    SerializedStorageClass,
    dataset_ref_from_simple,
    dataset_ref_to_simple,
    dataset_type_from_simple,
    dataset_type_to_simple,
    quantum_from_simple,
    quantum_to_simple,
)
from s3qbb.errors import DataIdError, DatasetTypeError

GOLDEN = Path(__file__).parent / "golden"
UNIVERSE = DimensionUniverse()

QUANTUM_ID = uuid.UUID("3f1c9a52-7d4e-4b8a-9c21-0e5f6a7b8c9d")
REF_ID = uuid.UUID("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
CONFIG_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
RAW_ID = uuid.UUID("00000000-0000-4000-8000-000000000002")
BIAS_ID = uuid.UUID("00000000-0000-4000-8000-000000000003")
SUMMARY_ID = uuid.UUID("00000000-0000-4000-8000-000000000004")
CALEXP_ID = uuid.UUID("00000000-0000-4000-8000-000000000005")
META_ID = uuid.UUID("00000000-0000-4000-8000-000000000006")


# --- expected objects ------------------------------------------------------


def _calexp_type() -> DatasetType:
    return DatasetType("calexp", ["visit", "detector"], "StructuredComposite", universe=UNIVERSE)


def expected_dataset_type() -> DatasetType:
    return DatasetType("bias", ["detector"], "NumpyArray", universe=UNIVERSE, isCalibration=True)


def expected_component_dataset_type() -> DatasetType:
    return _calexp_type().makeComponentDatasetType("summary")


def expected_dataset_ref() -> DatasetRef:
    data_id = DataCoordinate.standardize(
        instrument="LSSTCam",
        visit=2024010100042,
        detector=94,
        physical_filter="r_57",
        band="r",
        day_obs=20240101,
        universe=UNIVERSE,
    )
    return DatasetRef(_calexp_type(), data_id, run="u/someone/run1", id=REF_ID)


def expected_quantum() -> Quantum:
    det = {"instrument": "LSSTCam", "detector": 94}
    config = DatasetType("isr_config", [], "StructuredDataDictYaml", universe=UNIVERSE)
    raw = DatasetType("raw", ["exposure", "detector"], "Bytes", universe=UNIVERSE)
    bias = expected_dataset_type()
    calexp = _calexp_type()
    meta = DatasetType("isr_metadata", ["exposure", "detector"], "StructuredDataDict", universe=UNIVERSE)
    run = "LSSTCam/runs/nightly/20240101"
    config_ref = DatasetRef(config, {}, run=run, id=CONFIG_ID)
    raw_ref = DatasetRef(raw, {**det, "exposure": 2024010100042}, run="LSSTCam/raw/all", id=RAW_ID)
    bias_ref = DatasetRef(bias, det, run="LSSTCam/calib/20231201", id=BIAS_ID)
    summary_ref = DatasetRef(
        calexp, {**det, "visit": 2024010100041}, run=run, id=SUMMARY_ID
    ).makeComponentRef("summary")
    calexp_ref = DatasetRef(calexp, {**det, "visit": 2024010100042}, run=run, id=CALEXP_ID)
    meta_ref = DatasetRef(meta, {**det, "exposure": 2024010100042}, run=run, id=META_ID)

    def info(
        dataset_id: uuid.UUID, path: str, sc: str, size: int, component: str | None = None
    ) -> StoredFileInfo:
        return StoredFileInfo(
            dataset_id=dataset_id,
            path=path,
            formatter=f"s3qbb.formatters.{sc.lower()}.Formatter",
            storage_class=sc,
            component=component,
            checksum="CRC32C:yZRlqg==",
            file_size=size,
        )

    records = DatastoreRecordData(
        records={
            CONFIG_ID: {"file_datastore_records": [info(CONFIG_ID, "run/isr_config.yaml", "Yaml", 120)]},
            RAW_ID: {"file_datastore_records": [info(RAW_ID, "s3://raw-bucket/raw/94.fits", "Bytes", 4096)]},
            BIAS_ID: {"file_datastore_records": [info(BIAS_ID, "calib/bias_94.npy", "NumpyArray", 80)]},
            SUMMARY_ID: {
                "file_datastore_records": [
                    info(SUMMARY_ID, "run/calexp/41_94.summary.json", "StructuredDataDict", 33, "summary")
                ]
            },
        }
    )
    return Quantum(
        id=QUANTUM_ID,
        taskName="lsst.ip.isr.IsrTask",
        taskLabel="isr",
        dataId=DataCoordinate.standardize(
            {**det, "exposure": 2024010100042, "physical_filter": "r_57"}, universe=UNIVERSE
        ),
        initInputs={config: [config_ref]},
        inputs={raw: [raw_ref], bias: [bias_ref], summary_ref.datasetType: [summary_ref]},
        outputs={calexp: [calexp_ref], meta: [meta_ref]},
        datastore_records={"s3_datastore": records},
    )


def expected_storage_class() -> StorageClass:
    return StorageClass(
        "SpectrumArray",
        "numpy.ndarray",
        formatter="npy",
        parameters=["rows", "bbox"],
        converters={"builtins.list": "numpy.asarray", "astropy.table.Table": "example.convert.to_array"},
        parameter_handler="example.params.apply",
    )


def expected_composite_storage_class() -> StorageClass:
    return StorageClass(
        "Exposure",
        "example.image.Exposure",
        formatter="example",
        components={"image": "SpectrumArray", "wcs": "StructuredDataDict"},
    )


def expected_minimal_storage_class() -> StorageClass:
    return StorageClass("Plain", dict)


# --- comparison helpers ------------------------------------------------------


def _ref_key(ref: DatasetRef) -> tuple[Any, ...]:
    # DatasetRef equality ignores implied data ID values; the wire must keep them.
    return (ref, ref.dataId.to_simple(), ref.datasetType.parentStorageClass)


def _assert_quantum_equal(a: Quantum, b: Quantum) -> None:
    assert (a.id, a.taskName, a.taskLabel) == (b.id, b.taskName, b.taskLabel)
    assert a.dataId == b.dataId
    assert (a.dataId.to_simple() if a.dataId else None) == (b.dataId.to_simple() if b.dataId else None)
    for group in ("initInputs", "inputs", "outputs"):
        ga, gb = getattr(a, group), getattr(b, group)
        assert dict(ga) == dict(gb), group
        assert {k.name: [_ref_key(r) for r in v] for k, v in ga.items()} == {
            k.name: [_ref_key(r) for r in v] for k, v in gb.items()
        }
    assert dict(a.datastore_records) == dict(b.datastore_records)


@dataclass(frozen=True)
class Case:
    model: type[pydantic.BaseModel]
    build: Callable[[], Any]
    to_simple: Callable[[Any], pydantic.BaseModel]
    from_simple: Callable[[Any], Any]
    check_equal: Callable[[Any, Any], None]


def _eq(a: Any, b: Any) -> None:
    assert a == b


def _ref_eq(a: DatasetRef, b: DatasetRef) -> None:
    assert _ref_key(a) == _ref_key(b)


CASES: dict[str, Case] = {
    "dataset_type": Case(
        SerializedDatasetType,
        expected_dataset_type,
        dataset_type_to_simple,
        lambda s: dataset_type_from_simple(s, UNIVERSE),
        _eq,
    ),
    "dataset_type_component": Case(
        SerializedDatasetType,
        expected_component_dataset_type,
        dataset_type_to_simple,
        lambda s: dataset_type_from_simple(s, UNIVERSE),
        _eq,
    ),
    "dataset_ref": Case(
        SerializedDatasetRef,
        expected_dataset_ref,
        dataset_ref_to_simple,
        lambda s: dataset_ref_from_simple(s, UNIVERSE),
        _ref_eq,
    ),
    "dataset_ref_minimal_component": Case(
        SerializedDatasetRef,
        lambda: expected_dataset_ref().makeComponentRef("data"),
        lambda r: dataset_ref_to_simple(r, minimal=True),
        lambda s: dataset_ref_from_simple(s, UNIVERSE, dataset_type=_calexp_type()),
        _ref_eq,
    ),
    "quantum": Case(
        SerializedQuantum,
        expected_quantum,
        quantum_to_simple,
        lambda s: quantum_from_simple(s, UNIVERSE),
        _assert_quantum_equal,
    ),
    "dimension_universe": Case(
        SerializedDimensionUniverse,
        DimensionUniverse,
        SerializedDimensionUniverse.from_universe,
        lambda s: s.to_universe(),
        _eq,
    ),
    "storage_class": Case(
        SerializedStorageClass,
        expected_storage_class,
        SerializedStorageClass.from_storage_class,
        lambda s: s.to_storage_class(),
        _eq,
    ),
    "storage_class_minimal": Case(
        SerializedStorageClass,
        expected_minimal_storage_class,
        SerializedStorageClass.from_storage_class,
        lambda s: s.to_storage_class(),
        _eq,
    ),
    "storage_class_composite": Case(
        SerializedStorageClass,
        expected_composite_storage_class,
        SerializedStorageClass.from_storage_class,
        lambda s: s.to_storage_class(),
        _eq,
    ),
}


def _golden_path(name: str) -> Path:
    return GOLDEN / f"{name}.json"


def write_golden() -> None:
    """Write every golden file from the expected objects (run once, by hand)."""
    GOLDEN.mkdir(exist_ok=True)
    for name, case in CASES.items():
        text = case.to_simple(case.build()).model_dump_json(indent=2)
        _golden_path(name).write_text(text + "\n", encoding="utf-8")


# --- golden files ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_file_rebuilds_the_expected_object(name: str) -> None:
    case = CASES[name]
    simple = case.model.model_validate_json(_golden_path(name).read_text(encoding="utf-8"))
    case.check_equal(case.from_simple(simple), case.build())


@pytest.mark.parametrize("name", sorted(CASES))
def test_expected_object_serializes_to_the_golden_file(name: str) -> None:
    case = CASES[name]
    golden = json.loads(_golden_path(name).read_text(encoding="utf-8"))
    assert golden["version"] == WIRE_VERSION
    produced = json.loads(case.to_simple(case.build()).model_dump_json())
    assert produced == golden
    # Also through a rebuilt object: serialization is stable.
    rebuilt = case.from_simple(case.model.model_validate(golden))
    assert json.loads(case.to_simple(rebuilt).model_dump_json()) == golden


def test_golden_files_use_daf_butler_field_names() -> None:
    ref = json.loads(_golden_path("dataset_ref").read_text(encoding="utf-8"))
    assert set(ref) == {"version", "id", "datasetType", "dataId", "run", "component"}
    assert ref["id"] == str(REF_ID)
    assert ref["run"] == "u/someone/run1"
    assert set(ref["datasetType"]) >= {
        "name",
        "storageClass",
        "dimensions",
        "parentStorageClass",
        "isCalibration",
    }
    assert ref["dataId"]["dataId"]["band"] == "r"  # implied values travel too
    quantum = json.loads(_golden_path("quantum").read_text(encoding="utf-8"))
    assert quantum["id"] == str(QUANTUM_ID)
    assert set(quantum["datasetTypeMapping"]) == {
        "isr_config",
        "raw",
        "bias",
        "calexp.summary",
        "calexp",
        "isr_metadata",
    }
    assert all(r["datasetType"] is None for refs in quantum["inputs"].values() for r in refs)
    assert quantum["inputs"]["calexp.summary"][0]["component"] == "summary"
    records = quantum["datastoreRecords"]["s3_datastore"]
    assert sorted(records["dataset_ids"]) == sorted(str(i) for i in (CONFIG_ID, RAW_ID, BIAS_ID, SUMMARY_ID))
    by_id = records["records"]["lsst.daf.butler.datastore.stored_file_info.StoredFileInfo"]
    assert by_id[BIAS_ID.hex]["file_datastore_records"][0]["path"] == "calib/bias_94.npy"
    assert by_id[RAW_ID.hex]["file_datastore_records"][0]["component"] == "__NULL_STRING__"


def test_unknown_fields_are_ignored() -> None:
    golden = json.loads(_golden_path("dataset_ref").read_text(encoding="utf-8"))
    golden["added_in_a_later_release"] = {"x": 1}
    golden["datasetType"]["another"] = True
    ref = dataset_ref_from_simple(SerializedDatasetRef.model_validate(golden), UNIVERSE)
    _ref_eq(ref, expected_dataset_ref())


# --- versions ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("version", [WIRE_VERSION + 1, 99])
def test_newer_version_is_refused(name: str, version: int) -> None:
    golden = json.loads(_golden_path(name).read_text(encoding="utf-8"))
    golden["version"] = version
    with pytest.raises(pydantic.ValidationError, match="upgrade s3qbb") as info:
        CASES[name].model.model_validate(golden)
    assert str(version) in str(info.value)


def test_newer_nested_version_is_refused() -> None:
    golden = json.loads(_golden_path("quantum").read_text(encoding="utf-8"))
    golden["inputs"]["raw"][0]["version"] = WIRE_VERSION + 1
    with pytest.raises(pydantic.ValidationError, match="upgrade s3qbb"):
        SerializedQuantum.model_validate(golden)
    golden = json.loads(_golden_path("dataset_ref").read_text(encoding="utf-8"))
    golden["dataId"]["version"] = WIRE_VERSION + 1
    with pytest.raises(pydantic.ValidationError, match="upgrade s3qbb"):
        SerializedDatasetRef.model_validate(golden)


def test_missing_version_means_current() -> None:
    golden = json.loads(_golden_path("dataset_type").read_text(encoding="utf-8"))
    del golden["version"]
    simple = SerializedDatasetType.model_validate(golden)
    assert simple.version == WIRE_VERSION
    assert dataset_type_from_simple(simple, UNIVERSE) == expected_dataset_type()


def test_models_are_frozen() -> None:
    simple = dataset_type_to_simple(expected_dataset_type())
    with pytest.raises(pydantic.ValidationError):
        simple.name = "other"  # type: ignore[misc]


# --- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "simple",
    [
        SerializedDatasetType(name="bias", dimensions=["detector"]),
        SerializedDatasetType(name="bias", storageClass="NumpyArray"),
        SerializedDatasetType(name="bias"),
    ],
    ids=["no-storage-class", "no-dimensions", "neither"],
)
def test_missing_storage_class_or_dimensions(simple: SerializedDatasetType) -> None:
    with pytest.raises(DatasetTypeError, match="'bias'"):
        dataset_type_from_simple(simple, UNIVERSE)
    ref = SerializedDatasetRef(
        id=REF_ID, datasetType=simple, run="r", dataId=SerializedDataCoordinate(dataId={})
    )
    with pytest.raises(DatasetTypeError):
        dataset_ref_from_simple(ref, UNIVERSE)


@pytest.mark.parametrize(
    "simple",
    [
        SerializedDatasetType(name="bias", storageClass="NoSuchClass", dimensions=["detector"]),
        SerializedDatasetType(name="bias", storageClass="NumpyArray", dimensions=["no_such_dimension"]),
    ],
    ids=["unknown-storage-class", "unknown-dimension"],
)
def test_unknown_storage_class_or_dimension(simple: SerializedDatasetType) -> None:
    with pytest.raises(DatasetTypeError):
        dataset_type_from_simple(simple, UNIVERSE)


def test_dataset_type_with_custom_storage_classes() -> None:
    factory = StorageClassFactory()
    factory.registerStorageClass(StorageClass("Mine", list))
    simple = SerializedDatasetType(name="mine", storageClass="Mine", dimensions=["instrument"])
    dt = dataset_type_from_simple(simple, UNIVERSE, factory)
    assert dt.storageClass.pytype is list
    assert dataset_type_to_simple(dt) == simple


def test_ref_errors() -> None:
    full = dataset_ref_to_simple(expected_dataset_ref())
    minimal = dataset_ref_to_simple(expected_dataset_ref(), minimal=True)
    assert minimal.datasetType is None
    with pytest.raises(DatasetTypeError, match=str(REF_ID)):
        dataset_ref_from_simple(minimal, UNIVERSE)
    with pytest.raises(DatasetTypeError, match="run or data ID"):
        dataset_ref_from_simple(full.model_copy(update={"run": None}), UNIVERSE)
    with pytest.raises(DatasetTypeError, match="run or data ID"):
        dataset_ref_from_simple(full.model_copy(update={"dataId": None}), UNIVERSE)
    bad_data_id = full.model_copy(update={"dataId": SerializedDataCoordinate(dataId={"instrument": "x"})})
    with pytest.raises(DataIdError):
        dataset_ref_from_simple(bad_data_id, UNIVERSE)
    with pytest.raises(DataIdError):
        dataset_ref_from_simple(full.model_copy(update={"run": "a/../b"}), UNIVERSE)
    with pytest.raises(pydantic.ValidationError):
        SerializedDatasetRef.model_validate({"id": "not-a-uuid"})
    with pytest.raises(DatasetTypeError, match="'nope'"):
        dataset_ref_from_simple(
            minimal.model_copy(update={"component": "nope"}), UNIVERSE, dataset_type=_calexp_type()
        )


def test_quantum_ref_with_undefined_dataset_type() -> None:
    golden = json.loads(_golden_path("quantum").read_text(encoding="utf-8"))
    del golden["datasetTypeMapping"]["raw"]
    with pytest.raises(DatasetTypeError, match="'raw'"):
        quantum_from_simple(SerializedQuantum.model_validate(golden), UNIVERSE)


def test_quantum_without_data_id_or_refs() -> None:
    quantum = Quantum(id=QUANTUM_ID, taskLabel="empty")
    simple = quantum_to_simple(quantum)
    assert simple.dataId is None
    assert simple.datasetTypeMapping == {}
    again = quantum_from_simple(SerializedQuantum.model_validate_json(simple.model_dump_json()), UNIVERSE)
    _assert_quantum_equal(again, quantum)


# --- round trips -------------------------------------------------------------

_INT = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# Data ID values are refused at creation if no store can hold them (control characters, surrogates).
_STR = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=24)
_RUN = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,15}(/[A-Za-z0-9_\-]{1,8}){0,2}", fullmatch=True)
_DIMENSION_SETS = st.sets(st.sampled_from(sorted(UNIVERSE.names)), max_size=4)


@st.composite
def refs(draw: st.DrawFn) -> DatasetRef:
    group = UNIVERSE.conform(draw(_DIMENSION_SETS))
    values: dict[str, int | str] = {}
    for name in group.names:
        if name in group.required or draw(st.booleans()):
            values[name] = draw(_INT) if UNIVERSE[name].value_type is int else draw(_STR)
    storage_class = draw(
        st.sampled_from(["StructuredDataDict", "StructuredComposite", "NumpyArray", "Bytes"])
    )
    dataset_type = DatasetType(
        draw(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)),
        group,
        storage_class,
        isCalibration=draw(st.booleans()),
    )
    ref = DatasetRef(dataset_type, values, run=draw(_RUN), id=draw(st.uuids()))
    if storage_class == "StructuredComposite" and draw(st.booleans()):
        ref = ref.makeComponentRef(draw(st.sampled_from(["summary", "output", "data"])))
    return ref


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(refs())
def test_ref_round_trip(ref: DatasetRef) -> None:
    text = dataset_ref_to_simple(ref).model_dump_json()
    again = dataset_ref_from_simple(SerializedDatasetRef.model_validate_json(text), UNIVERSE)
    _ref_eq(again, ref)
    assert again.id == ref.id
    assert again.datasetType.isCalibration() == ref.datasetType.isCalibration()
    assert json.loads(dataset_ref_to_simple(again).model_dump_json()) == json.loads(text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(refs())
def test_minimal_ref_round_trip(ref: DatasetRef) -> None:
    text = dataset_ref_to_simple(ref, minimal=True).model_dump_json()
    parent_type = ref.datasetType.makeCompositeDatasetType() if ref.isComponent() else ref.datasetType
    again = dataset_ref_from_simple(
        SerializedDatasetRef.model_validate_json(text), UNIVERSE, dataset_type=parent_type
    )
    _ref_eq(again, ref)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(refs(), min_size=1, max_size=6, unique_by=lambda r: r.id), st.data())
def test_quantum_round_trip(all_refs: list[DatasetRef], data: st.DataObject) -> None:
    # One definition per dataset type name in a quantum.
    by_name: dict[str, DatasetRef] = {}
    for ref in all_refs:
        by_name.setdefault(ref.datasetType.name, ref)
    chosen = list(by_name.values())
    split = data.draw(st.integers(min_value=0, max_value=len(chosen)))
    quantum = Quantum(id=data.draw(st.uuids()), inputs=chosen[:split], outputs=chosen[split:])
    text = quantum_to_simple(quantum).model_dump_json()
    again = quantum_from_simple(SerializedQuantum.model_validate_json(text), UNIVERSE)
    _assert_quantum_equal(again, quantum)


if __name__ == "__main__":
    write_golden()
    sys.exit(0)
