"""Tests of s3qbb.core.records: record values, record data and their JSON form."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pydantic
import pytest

from s3qbb.core.records import (
    DAF_BUTLER_RECORD_CLASS,
    NULL_COMPONENT,
    S3QBB_RECORD_CLASS,
    DatastoreRecordData,
    SerializedDatastoreRecordData,
    StoredFileInfo,
    check_record_path,
)
from s3qbb.errors import RecordDataError, S3qbbError

GOLDEN = Path(__file__).parent / "golden" / "daf_butler_record_data.json"
TABLE = "file_datastore_records"


def make_info(dataset_id: uuid.UUID | None = None, component: str | None = None, **kw: Any) -> StoredFileInfo:
    values: dict[str, Any] = {
        "dataset_id": dataset_id or uuid.uuid4(),
        "path": "run/type/file.json",
        "formatter": "s3qbb.formatters.json.JsonFormatter",
        "storage_class": "StructuredDataDict",
        "component": component,
        "checksum": "CRC32C:AAAAAA==",
        "file_size": 42,
    }
    values.update(kw)
    return StoredFileInfo(**values)


def row(**kw: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "formatter": "f.F",
        "path": "a/b.json",
        "storage_class": "SC",
        "component": NULL_COMPONENT,
        "checksum": None,
        "file_size": 3,
    }
    values.update(kw)
    return values


def wire(
    rows: list[dict[str, Any]], *, cls: str = DAF_BUTLER_RECORD_CLASS, table: str = TABLE
) -> dict[str, Any]:
    dataset_id = uuid.UUID(int=7)
    return {"dataset_ids": [str(dataset_id)], "records": {cls: {dataset_id.hex: {table: rows}}}}


# --- StoredFileInfo ------------------------------------------------------


def test_to_record_uses_placeholder_and_round_trips() -> None:
    info = make_info()
    record = info.to_record()
    assert record["component"] == NULL_COMPONENT
    assert set(record) == {
        "dataset_id",
        "path",
        "formatter",
        "storage_class",
        "component",
        "checksum",
        "file_size",
    }
    assert StoredFileInfo.from_record(record) == info
    component = make_info(component="image")
    assert component.to_record()["component"] == "image"
    assert StoredFileInfo.from_record(component.to_record()) == component


def test_from_record_accepts_string_ids_and_db_nulls() -> None:
    dataset_id = uuid.uuid4()
    record = make_info(dataset_id).to_record()
    record.update(dataset_id=dataset_id.hex, component="", file_size=None)
    info = StoredFileInfo.from_record(record)
    assert info.dataset_id == dataset_id
    assert info.component is None
    assert info.file_size == -1
    del record["dataset_id"]
    assert StoredFileInfo.from_record(record, dataset_id=dataset_id).dataset_id == dataset_id
    with pytest.raises(KeyError):
        StoredFileInfo.from_record(record)


def test_stored_file_info_is_frozen_and_updates_by_copy() -> None:
    info = make_info()
    with pytest.raises(AttributeError):
        info.path = "other"  # type: ignore[misc]
    changed = info.update(path="x/y.json", file_size=7)
    assert (changed.path, changed.file_size) == ("x/y.json", 7)
    assert info.path == "run/type/file.json"
    assert not hasattr(info, "__dict__")  # slotted
    with pytest.raises(TypeError):
        info.update(no_such_field=1)


# --- DatastoreRecordData --------------------------------------------------


def test_update_keeps_existing_table_records() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    first = DatastoreRecordData({a: {TABLE: [make_info(a)]}})
    second = DatastoreRecordData({a: {TABLE: [make_info(a, path="other.json")]}, b: {TABLE: [make_info(b)]}})
    first.update(second)
    assert first.dataset_ids == {a, b}
    assert first.records[a][TABLE][0].path == "run/type/file.json"
    assert first.records[b][TABLE] == second.records[b][TABLE]


def test_subset() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    data = DatastoreRecordData({a: {TABLE: [make_info(a)]}, b: {TABLE: [make_info(b)]}})
    sub = data.subset({a, uuid.uuid4()})
    assert sub is not None and sub.dataset_ids == {a}
    assert data.subset([uuid.uuid4()]) is None


def test_to_simple_layout_is_daf_butlers() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    data = DatastoreRecordData({a: {TABLE: [make_info(a), make_info(a, component="mask")]}, b: {}})
    dumped = json.loads(data.to_simple().model_dump_json())
    assert dumped["dataset_ids"] == [str(a), str(b)]
    assert list(dumped["records"]) == [DAF_BUTLER_RECORD_CLASS]
    rows = dumped["records"][DAF_BUTLER_RECORD_CLASS][a.hex][TABLE]
    assert rows[0] == {
        "formatter": "s3qbb.formatters.json.JsonFormatter",
        "path": "run/type/file.json",
        "storage_class": "StructuredDataDict",
        "component": NULL_COMPONENT,
        "checksum": "CRC32C:AAAAAA==",
        "file_size": 42,
    }
    assert rows[1]["component"] == "mask"
    assert b.hex not in dumped["records"][DAF_BUTLER_RECORD_CLASS]


def test_json_round_trip_preserves_everything() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    data = DatastoreRecordData(
        {
            a: {TABLE: [make_info(a, checksum=None, file_size=-1)]},
            b: {TABLE: [make_info(b, component="image"), make_info(b, component="mask")], "other": []},
            c: {},
        }
    )
    text = data.to_simple().model_dump_json()
    back = DatastoreRecordData.from_simple(SerializedDatastoreRecordData.model_validate_json(text))
    assert back.records[a] == data.records[a]
    assert back.records[b] == {TABLE: data.records[b][TABLE]}
    assert back.records[c] == {}
    assert list(back.records) == [a, b, c]


def test_to_simple_refuses_misfiled_record() -> None:
    data = DatastoreRecordData({uuid.uuid4(): {TABLE: [make_info()]}})
    with pytest.raises(RecordDataError) as excinfo:
        data.to_simple()
    assert isinstance(excinfo.value, S3qbbError) and isinstance(excinfo.value, ValueError)


# --- golden file ----------------------------------------------------------


def test_golden_file_round_trips_identically() -> None:
    text = GOLDEN.read_text()
    model = SerializedDatastoreRecordData.model_validate_json(text)
    assert json.loads(model.model_dump_json()) == json.loads(text)
    # Through the domain type and back, too.
    data = DatastoreRecordData.from_simple(model)
    assert json.loads(data.to_simple().model_dump_json()) == json.loads(text)


def test_golden_file_content() -> None:
    data = DatastoreRecordData.from_simple(
        SerializedDatastoreRecordData.model_validate_json(GOLDEN.read_text())
    )
    summary, calexp, bare = (
        uuid.UUID("0b6f2d2e-7c1a-4c55-9a55-1f7e3c9b8a01"),
        uuid.UUID("5d3a2f6e-1b2c-4d3e-8f4a-5b6c7d8e9f02"),
        uuid.UUID("9e8d7c6b-5a4f-4e3d-9c1b-0a9f8e7d6c03"),
    )
    assert list(data.records) == [summary, calexp, bare]
    (info,) = data.records[summary][TABLE]
    assert info.component is None and info.checksum is None and info.file_size == 1234
    assert [i.component for i in data.records[calexp][TABLE]] == ["image", "mask"]
    assert data.records[calexp][TABLE][0].checksum == "CRC32C:yZRlqg=="
    assert data.records[calexp][TABLE][1].file_size == -1
    assert data.records[bare] == {}


# --- reading other layouts -------------------------------------------------


def test_accepts_s3qbb_and_legacy_class_names() -> None:
    for cls in (S3QBB_RECORD_CLASS, "lsst.daf.butler.core.storedFileInfo.StoredFileInfo"):
        model = SerializedDatastoreRecordData.model_validate(wire([row()], cls=cls))
        data = DatastoreRecordData.from_simple(model)
        assert data.records[uuid.UUID(int=7)][TABLE][0].path == "a/b.json"


def test_unknown_record_class_is_a_clear_error() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"unknown datastore record class 'my\.Records'"):
        SerializedDatastoreRecordData.model_validate(wire([row()], cls="my.Records"))


def test_empty_class_name_only_with_no_rows() -> None:
    SerializedDatastoreRecordData.model_validate(wire([], cls=""))
    with pytest.raises(pydantic.ValidationError):
        SerializedDatastoreRecordData.model_validate(wire([row()], cls=""))


def test_dashed_keys_normalized_and_row_ids_checked() -> None:
    dataset_id = uuid.UUID(int=7)
    rows = [row(dataset_id=str(dataset_id))]
    doc: dict[str, Any] = {
        "dataset_ids": [dataset_id.hex],
        "records": {DAF_BUTLER_RECORD_CLASS: {str(dataset_id): {TABLE: rows}}},
    }
    model = SerializedDatastoreRecordData.model_validate(doc)
    assert list(model.records[DAF_BUTLER_RECORD_CLASS]) == [dataset_id.hex]
    dumped = json.loads(model.model_dump_json())["records"][DAF_BUTLER_RECORD_CLASS]
    assert dumped == {dataset_id.hex: {TABLE: [row()]}}
    rows[0]["dataset_id"] = str(uuid.uuid4())
    with pytest.raises(pydantic.ValidationError, match="filed under dataset"):
        SerializedDatastoreRecordData.model_validate(doc)


def test_null_component_normalized() -> None:
    model = SerializedDatastoreRecordData.model_validate(wire([row(component=None)]))
    assert model.records[DAF_BUTLER_RECORD_CLASS][uuid.UUID(int=7).hex][TABLE][0].component == NULL_COMPONENT


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(wire([row(path="../escape.json")]), id="dotdot"),
        pytest.param(wire([row(path="a/../../b")]), id="dotdot-inner"),
        pytest.param(wire([row(path="a/%2e%2e/b")]), id="dotdot-encoded"),
        pytest.param(wire([row(path="a/.%2E/b")]), id="dotdot-encoded-other"),
        pytest.param(wire([row(path="s3://bucket/a/%2E./b")]), id="dotdot-encoded-in-uri"),
        pytest.param(wire([row(path="/etc/passwd")]), id="leading-slash"),
        pytest.param(wire([row(path="s3://bucket/a/../b")]), id="dotdot-in-uri"),
        pytest.param(wire([row(path="a/b\x00.json")]), id="nul"),
        pytest.param(wire([row(path="a/\nb")]), id="newline"),
        pytest.param(wire([row(path="")]), id="empty-path"),
        pytest.param(wire([row(file_size=-2)]), id="negative-size"),
        pytest.param(wire([row(checksum="x\x00")]), id="nul-checksum"),
        pytest.param(wire([row(formatter="")]), id="empty-formatter"),
        pytest.param(wire([row(), row()]), id="duplicate-component"),
        pytest.param(wire([row(extra=1)]), id="unknown-column"),
        pytest.param(wire([row()], table="bad-name"), id="table-dash"),
        pytest.param(wire([row()], table="1table"), id="table-digit"),
        pytest.param(wire([row()], table="t; DROP TABLE x"), id="table-sql"),
        pytest.param({"dataset_ids": ["not-a-uuid"], "records": {}}, id="bad-uuid"),
        pytest.param({"dataset_ids": [str(uuid.UUID(int=1))] * 2, "records": {}}, id="duplicate-id"),
        pytest.param({"dataset_ids": [], "records": wire([row()])["records"]}, id="id-not-listed"),
        pytest.param({**wire([row()]), "surprise": 1}, id="unknown-field"),
        pytest.param(
            {"dataset_ids": [], "records": {DAF_BUTLER_RECORD_CLASS: {"nothex": {TABLE: []}}}}, id="bad-key"
        ),
    ],
)
def test_hostile_values_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        SerializedDatastoreRecordData.model_validate(doc)


@pytest.mark.parametrize(
    "path",
    [
        "a/b.json",
        "run/x..y/file..json",
        "s3://bucket/a/b",
        "file:///data/x.fits",
        # What sanitize_segment writes for a data ID value "..": a literal key segment, accepted.
        "run/raw/%2E./raw_%2E._0b6c.json",
        "run/%2E/%2E..",
    ],
)
def test_acceptable_paths(path: str) -> None:
    assert check_record_path(path) == path
    SerializedDatastoreRecordData.model_validate(wire([row(path=path)]))
