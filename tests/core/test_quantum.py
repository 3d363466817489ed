"""Tests of s3qbb.core.quantum."""

from __future__ import annotations

import uuid

import pytest

from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.core.dataset_type import DatasetType
from s3qbb.core.dimensions import DataCoordinate, DimensionUniverse
from s3qbb.core.quantum import Quantum
from s3qbb.core.records import DatastoreRecordData
from s3qbb.errors import AmbiguousDatasetError, DatasetTypeError, InvalidNameError

RUN = "run1"


@pytest.fixture
def types(universe: DimensionUniverse) -> dict[str, DatasetType]:
    return {
        "config": DatasetType("task_config", [], "StructuredDataDict", universe=universe),
        "raw": DatasetType("raw", ["exposure", "detector"], "Bytes", universe=universe),
        "bias": DatasetType("bias", ["detector"], "NumpyArray", universe=universe, isCalibration=True),
        "calexp": DatasetType("calexp", ["visit", "detector"], "StructuredComposite", universe=universe),
        "meta": DatasetType("calexp_meta", ["visit", "detector"], "StructuredDataDict", universe=universe),
    }


@pytest.fixture
def refs(types: dict[str, DatasetType]) -> dict[str, DatasetRef]:
    det = {"instrument": "Cam", "detector": 1}
    return {
        "config": DatasetRef(types["config"], {}, run=RUN),
        "raw": DatasetRef(types["raw"], {**det, "exposure": 10}, run=RUN),
        "raw2": DatasetRef(types["raw"], {**det, "exposure": 11}, run=RUN),
        "bias": DatasetRef(types["bias"], det, run="calib"),
        "calexp": DatasetRef(types["calexp"], {**det, "visit": 10}, run=RUN),
        "meta": DatasetRef(types["meta"], {**det, "visit": 10}, run=RUN),
    }


def test_mapping_inputs(
    types: dict[str, DatasetType], refs: dict[str, DatasetRef], universe: DimensionUniverse
) -> None:
    data_id = DataCoordinate.standardize(instrument="Cam", visit=10, detector=1, universe=universe)
    quantum_id = uuid.UUID("01234567-89ab-4def-8123-456789abcdef")
    records = {"s3": DatastoreRecordData()}
    quantum = Quantum(
        taskName="pkg.module.IsrTask",
        taskLabel="isr",
        dataId=data_id,
        initInputs={types["config"]: refs["config"]},  # type: ignore[arg-type]  # a single ref is accepted
        inputs={types["raw"]: [refs["raw"], refs["raw2"]], types["bias"]: (refs["bias"],)},
        outputs={types["calexp"]: [refs["calexp"]], types["meta"]: [refs["meta"]]},
        datastore_records=records,
        id=quantum_id,
    )
    assert quantum.id == quantum_id
    assert quantum.taskName == "pkg.module.IsrTask"
    assert quantum.taskLabel == "isr"
    assert quantum.dataId == data_id
    assert dict(quantum.initInputs) == {types["config"]: (refs["config"],)}
    assert dict(quantum.inputs) == {
        types["raw"]: (refs["raw"], refs["raw2"]),
        types["bias"]: (refs["bias"],),
    }
    assert dict(quantum.outputs) == {types["calexp"]: (refs["calexp"],), types["meta"]: (refs["meta"],)}
    assert quantum.input_refs() == [refs["config"], refs["raw"], refs["raw2"], refs["bias"]]
    assert quantum.output_refs() == [refs["calexp"], refs["meta"]]
    assert quantum.dataset_types() == {
        "task_config": types["config"],
        "raw": types["raw"],
        "bias": types["bias"],
        "calexp": types["calexp"],
        "calexp_meta": types["meta"],
    }
    assert dict(quantum.datastore_records) == records
    assert repr(quantum) == f"Quantum(id={quantum_id}, task='isr', inputs=3, outputs=2)"


def test_groups_are_read_only(types: dict[str, DatasetType], refs: dict[str, DatasetRef]) -> None:
    source = {types["raw"]: [refs["raw"]]}
    records = {"s3": DatastoreRecordData()}
    quantum = Quantum(inputs=source, datastore_records=records)
    source[types["raw"]].append(refs["raw2"])
    records["other"] = DatastoreRecordData()
    assert quantum.inputs[types["raw"]] == (refs["raw"],)
    assert set(quantum.datastore_records) == {"s3"}
    with pytest.raises(TypeError):
        quantum.inputs[types["bias"]] = ()  # type: ignore[index]
    with pytest.raises(TypeError):
        quantum.datastore_records["x"] = DatastoreRecordData()  # type: ignore[index]


def test_iterable_inputs_are_grouped_by_dataset_type(
    types: dict[str, DatasetType], refs: dict[str, DatasetRef]
) -> None:
    quantum = Quantum(
        initInputs=[refs["config"]],
        inputs=iter([refs["raw"], refs["bias"], refs["raw2"]]),
        outputs=(refs["calexp"], refs["meta"]),
    )
    assert dict(quantum.inputs) == {types["raw"]: (refs["raw"], refs["raw2"]), types["bias"]: (refs["bias"],)}
    assert quantum.output_refs() == [refs["calexp"], refs["meta"]]
    assert quantum.input_refs()[0] == refs["config"]


def test_defaults() -> None:
    quantum = Quantum()
    assert quantum.id.version == 4
    assert Quantum().id != quantum.id
    assert quantum.taskName is None
    assert quantum.taskLabel is None
    assert quantum.dataId is None
    assert dict(quantum.initInputs) == {}
    assert dict(quantum.inputs) == {}
    assert dict(quantum.outputs) == {}
    assert dict(quantum.datastore_records) == {}
    assert quantum.input_refs() == []
    assert quantum.output_refs() == []
    assert quantum.dataset_types() == {}


def test_empty_groups_are_dropped(types: dict[str, DatasetType], refs: dict[str, DatasetRef]) -> None:
    quantum = Quantum(inputs={types["raw"]: [], types["bias"]: [refs["bias"]]})
    assert list(quantum.inputs) == [types["bias"]]


@pytest.mark.parametrize(
    ("first", "second", "roles"),
    [
        ("inputs", "outputs", ("input", "output")),
        ("initInputs", "inputs", ("init-input", "input")),
        ("initInputs", "outputs", ("init-input", "output")),
        ("inputs", "inputs", ("input", "input")),
    ],
)
def test_duplicate_ids_across_roles(
    refs: dict[str, DatasetRef], first: str, second: str, roles: tuple[str, str]
) -> None:
    ref = refs["raw"]
    kwargs = {first: [ref, ref]} if first == second else {first: [ref], second: [ref]}
    with pytest.raises(AmbiguousDatasetError, match=str(ref.id)) as info:
        Quantum(taskLabel="isr", **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "isr" in message
    assert f"as {roles[0]} and as {roles[1]}" in message


def test_same_id_under_another_dataset_type_is_a_duplicate(
    types: dict[str, DatasetType], refs: dict[str, DatasetRef]
) -> None:
    clash = DatasetRef(types["meta"], refs["calexp"].dataId, run=RUN, id=refs["raw"].id)
    with pytest.raises(AmbiguousDatasetError):
        Quantum(inputs=[refs["raw"]], outputs=[clash])


def test_mislabelled_refs(types: dict[str, DatasetType], refs: dict[str, DatasetRef]) -> None:
    with pytest.raises(DatasetTypeError, match="'bias'") as info:
        Quantum(inputs={types["bias"]: [refs["raw"]]})
    assert "inputs" in str(info.value)
    with pytest.raises(DatasetTypeError, match="outputs"):
        Quantum(outputs={types["meta"]: [refs["calexp"]]})


def test_ref_with_overridden_storage_class_may_be_listed_under_its_type(
    types: dict[str, DatasetType], refs: dict[str, DatasetRef]
) -> None:
    config = DatasetType(
        "task_config", [], "StructuredDataDictYaml", universe=types["config"].dimensions.universe
    )
    overridden = refs["config"].overrideStorageClass("StructuredDataDictYaml")
    assert overridden.datasetType == config
    quantum = Quantum(initInputs={types["config"]: [overridden]})
    assert quantum.initInputs[types["config"]] == (overridden,)


@pytest.mark.parametrize(
    "unresolved",
    ["raw", {"instrument": "Cam"}, None, uuid.uuid4()],
    ids=["name", "data-id", "none", "uuid"],
)
def test_unresolved_refs(
    types: dict[str, DatasetType], refs: dict[str, DatasetRef], unresolved: object
) -> None:
    with pytest.raises(AmbiguousDatasetError, match="Quantum inputs") as info:
        Quantum(inputs=[refs["raw"], unresolved])  # type: ignore[list-item]
    assert isinstance(info.value, TypeError)
    with pytest.raises(AmbiguousDatasetError, match="Quantum outputs"):
        Quantum(outputs={types["raw"]: [unresolved]})  # type: ignore[arg-type]
    with pytest.raises(AmbiguousDatasetError, match="Quantum init-inputs"):
        Quantum(initInputs=[unresolved])  # type: ignore[list-item]


def _records(ref: DatasetRef, path: str) -> DatastoreRecordData:
    from s3qbb.core.records import StoredFileInfo

    info = StoredFileInfo(ref.id, path, "s3qbb.formatters.bytes.BytesFormatter", "Bytes", None, None, 3)
    return DatastoreRecordData({ref.id: {"file_datastore_records": [info]}})


def test_with_datastore_records_merges_by_datastore_name(refs: dict[str, DatasetRef]) -> None:
    quantum = Quantum(
        taskLabel="calibrate",
        inputs=[refs["raw"], refs["raw2"]],
        outputs=[refs["calexp"]],
        datastore_records={"s3": _records(refs["raw"], "raw/10")},
    )
    merged = quantum.with_datastore_records(
        {"s3": _records(refs["raw2"], "raw/11")}, {"other": _records(refs["raw2"], "x")}
    )
    assert merged.id == quantum.id and merged.taskLabel == "calibrate"
    assert merged.input_refs() == quantum.input_refs() and merged.output_refs() == quantum.output_refs()
    assert merged.datastore_records["s3"].dataset_ids == {refs["raw"].id, refs["raw2"].id}
    assert merged.datastore_records["other"].dataset_ids == {refs["raw2"].id}
    # The original is untouched, and adding nothing returns the quantum itself.
    assert quantum.datastore_records["s3"].dataset_ids == {refs["raw"].id}
    assert quantum.with_datastore_records({}) is quantum


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("taskLabel", "calibrate\x01", "control character U\\+0001"),
        ("taskLabel", "a\x00b", "control character U\\+0000"),
        ("taskLabel", "x\x7f", "control character U\\+007F"),
        ("taskLabel", "\ud800x", "lone surrogate U\\+D800"),
        ("taskLabel", "L" * 257, "257 characters long, more than the 256"),
        ("taskName", "pkg.Task\n", "control character U\\+000A"),
        ("taskName", "n" * 513, "513 characters long, more than the 512"),
        ("taskLabel", 3, "must be a str or None"),
    ],
)
def test_a_task_label_or_name_the_records_cannot_hold_is_refused_when_the_quantum_is_made(
    field: str, value: object, match: str
) -> None:
    """Not when the quantum ends: by then its outputs exist, and they would stay unrecorded."""
    with pytest.raises(InvalidNameError, match=match) as caught:
        Quantum(**{field: value})  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)


def test_the_longest_task_label_and_name_the_registry_holds_are_accepted() -> None:
    quantum = Quantum(taskLabel="L" * 256, taskName="n" * 512)
    assert len(quantum.taskLabel or "") == 256 and len(quantum.taskName or "") == 512
    assert Quantum(taskLabel="étape ✓").taskLabel == "étape ✓"
