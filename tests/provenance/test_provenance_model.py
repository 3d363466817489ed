"""Tests of s3qbb.provenance.model.QuantumProvenanceData: daf_butler layout, validation, round trips."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3qbb.core.records import (
    DAF_BUTLER_RECORD_CLASS,
    NULL_COMPONENT,
    DatastoreRecordData,
    StoredFileInfo,
)
from s3qbb.errors import RecordDataError, S3qbbError
from s3qbb.provenance import QuantumProvenanceData

GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN = GOLDEN_DIR / "daf_butler_provenance.json"
GOLDEN_COMPACT = GOLDEN_DIR / "daf_butler_provenance_compact.json"
DAF_BUTLER_FIELDS = [
    "predicted_inputs",
    "available_inputs",
    "actual_inputs",
    "predicted_outputs",
    "actual_outputs",
    "datastore_records",
]
DATASTORE = "FileDatastore@s3://bucket/repo"
IN1, IN2, IN3 = (uuid.UUID(f"1a1e0c5e-2f0b-4b7e-8c1d-00000000000{i}") for i in (1, 2, 3))
OUT_A, OUT_B, OUT_C = (uuid.UUID(f"7f3b9d20-5c4e-4a1f-9e2d-00000000000{c}") for c in "abc")


def record_data(*dataset_ids: uuid.UUID) -> DatastoreRecordData:
    return DatastoreRecordData(
        records={
            i: {
                "file_datastore_records": [
                    StoredFileInfo(
                        dataset_id=i,
                        path=f"run/x/x_{i}.json",
                        formatter="s3qbb.formatters.json.JsonFormatter",
                        storage_class="StructuredDataDict",
                        component=None,
                        checksum="CRC32C:AAAAAA==",
                        file_size=7,
                    )
                ]
            }
            for i in dataset_ids
        }
    )


def make(**kw: Any) -> QuantumProvenanceData:
    values: dict[str, Any] = {
        "predicted_inputs": {IN1, IN2},
        "available_inputs": {IN1, IN2},
        "actual_inputs": {IN1},
        "predicted_outputs": {OUT_A, OUT_B},
        "actual_outputs": {OUT_A},
        "datastore_records": {DATASTORE: record_data(OUT_A).to_simple()},
    }
    values.update(kw)
    return QuantumProvenanceData(**values)


# --- golden files in daf_butler's layout -------------------------------------


def test_golden_file_re_serialises_identically() -> None:
    text = GOLDEN.read_bytes()
    provenance = QuantumProvenanceData.from_json(text, source=str(GOLDEN))
    assert provenance.to_json() == text


def test_golden_file_content() -> None:
    provenance = QuantumProvenanceData.from_json(GOLDEN.read_bytes())
    assert provenance.predicted_inputs == {IN1, IN2, IN3}
    assert provenance.available_inputs == {IN1, IN2}
    # daf_butler records an input as used when a deferred handle is taken, even if the
    # harness never checked it for existence: actual is not a subset of available.
    assert provenance.actual_inputs == {IN1, IN3}
    assert provenance.predicted_outputs == {OUT_A, OUT_B, OUT_C}
    assert provenance.actual_outputs == {OUT_A, OUT_B}
    records = provenance.datastore_record_data()[DATASTORE]
    assert set(records.records) == {OUT_A, OUT_B}
    (summary,) = records.records[OUT_A]["file_datastore_records"]
    assert summary.component is None and summary.checksum is None and summary.file_size == 1234
    image, mask = records.records[OUT_B]["file_datastore_records"]
    assert (image.component, image.checksum) == ("image", "CRC32C:9ONpcA==")
    assert (mask.component, mask.file_size) == ("mask", -1)


def test_compact_unsorted_daf_butler_output_reads_to_the_same_canonical_bytes() -> None:
    # pydantic's default json() output: compact, sets in hash order.
    compact = QuantumProvenanceData.from_json(GOLDEN_COMPACT.read_text())
    assert compact.to_json() == GOLDEN.read_bytes()


def test_direct_on_golden_matches_validated_read() -> None:
    text = GOLDEN.read_bytes()
    trusted = QuantumProvenanceData.direct(**json.loads(text))
    assert trusted == QuantumProvenanceData.from_json(text)
    assert trusted.to_json() == text


def test_our_json_has_exactly_daf_butlers_fields_in_order() -> None:
    parsed = json.loads(make().to_json())
    assert list(parsed) == DAF_BUTLER_FIELDS
    assert list(parsed["datastore_records"][DATASTORE]) == ["dataset_ids", "records"]
    # daf_butler's own read path: keyword-only direct() taking exactly these keys.
    assert QuantumProvenanceData.direct(**parsed) == make()


def test_uuid_sets_are_sorted_lists_of_dashed_strings() -> None:
    ids = [uuid.uuid4() for _ in range(20)]
    provenance = make(predicted_inputs=set(ids), available_inputs=set(), actual_inputs=set())
    parsed = json.loads(provenance.to_json())
    assert parsed["predicted_inputs"] == sorted(str(i) for i in ids)
    assert all(len(s) == 36 and s.count("-") == 4 for s in parsed["predicted_inputs"])
    # pydantic's own JSON dump (what model_dump_json gives daf_butler users) agrees.
    assert json.loads(provenance.model_dump_json()) == parsed


def test_to_json_is_deterministic_and_canonical() -> None:
    data = record_data(OUT_B, OUT_A)
    one = make(
        actual_outputs={OUT_A, OUT_B}, datastore_records={"b": data.to_simple(), "a": data.to_simple()}
    )
    two = make(
        actual_outputs=[OUT_B, OUT_A],
        datastore_records={"a": record_data(OUT_A, OUT_B).to_simple(), "b": data.to_simple()},
    )
    assert one.to_json() == two.to_json()
    text = one.to_json()
    assert text.endswith(b"}\n") and text.isascii()
    assert list(json.loads(text)["datastore_records"]) == ["a", "b"]


def test_direct_rejects_unknown_keys_like_daf_butler() -> None:
    parsed = json.loads(make().to_json())
    parsed["quantum_id"] = str(uuid.uuid4())
    with pytest.raises(TypeError, match="quantum_id"):
        QuantumProvenanceData.direct(**parsed)


def test_direct_accepts_uuid_objects_models_and_null_components() -> None:
    raw = json.loads(make().to_json())["datastore_records"][DATASTORE]
    row = raw["records"][DAF_BUTLER_RECORD_CLASS][OUT_A.hex]["file_datastore_records"][0]
    row["component"] = None
    row["dataset_id"] = str(OUT_A)  # older layouts carry it in the row
    # dashed ID keys are normalized to hex like the validated path does
    raw["records"][DAF_BUTLER_RECORD_CLASS] = {str(OUT_A): {"file_datastore_records": [row]}}
    provenance = QuantumProvenanceData.direct(
        predicted_inputs=[IN1, str(IN2)],
        available_inputs=[IN1, IN2],
        actual_inputs=[str(IN1)],
        predicted_outputs={OUT_A, OUT_B},
        actual_outputs=[OUT_A],
        datastore_records={DATASTORE: raw},
    )
    assert provenance.to_json() == make().to_json()
    assert (
        provenance.datastore_record_data()[DATASTORE].records[OUT_A]["file_datastore_records"][0].component
        is None
    )
    assert (
        json.loads(provenance.to_json())["datastore_records"][DATASTORE]["records"][DAF_BUTLER_RECORD_CLASS][
            OUT_A.hex
        ]["file_datastore_records"][0]["component"]
        == NULL_COMPONENT
    )


def test_model_is_frozen() -> None:
    provenance = make()
    with pytest.raises(pydantic.ValidationError):
        provenance.actual_outputs = frozenset()  # type: ignore[misc]
    assert isinstance(provenance.predicted_inputs, frozenset)


def test_empty_provenance_round_trips() -> None:
    empty = QuantumProvenanceData(
        predicted_inputs=set(),
        available_inputs=set(),
        actual_inputs=set(),
        predicted_outputs=set(),
        actual_outputs=set(),
        datastore_records={},
    )
    expected: dict[str, Any] = {key: [] for key in DAF_BUTLER_FIELDS[:-1]}
    assert json.loads(empty.to_json()) == expected | {"datastore_records": {}}
    assert QuantumProvenanceData.from_json(empty.to_json()) == empty


# --- hypothesis over random ID sets -------------------------------------------

uuids = st.uuids()


@st.composite
def provenances(draw: st.DrawFn) -> QuantumProvenanceData:
    ids = draw(st.lists(uuids, unique=True, max_size=40))
    split = draw(st.integers(0, len(ids)))
    inputs, outputs = set(ids[:split]), ids[split:]
    available = draw(st.sets(st.sampled_from(sorted(inputs)))) if inputs else set()
    actual = draw(st.sets(st.sampled_from(sorted(inputs)))) if inputs else set()
    actual_outputs = draw(st.sets(st.sampled_from(outputs))) if outputs else set()
    with_records = draw(st.sets(st.sampled_from(sorted(actual_outputs)))) if actual_outputs else set()
    records = {DATASTORE: record_data(*with_records).to_simple()} if with_records else {}
    return QuantumProvenanceData(
        predicted_inputs=inputs,
        available_inputs=available,
        actual_inputs=actual,
        predicted_outputs=set(outputs),
        actual_outputs=actual_outputs,
        datastore_records=records,
    )


@settings(max_examples=60, deadline=None)
@given(provenances())
def test_round_trip_random_id_sets(provenance: QuantumProvenanceData) -> None:
    text = provenance.to_json()
    back = QuantumProvenanceData.from_json(text)
    assert back.to_json() == text
    for name in DAF_BUTLER_FIELDS[:-1]:
        assert getattr(back, name) == getattr(provenance, name)
    parsed = json.loads(text)
    assert QuantumProvenanceData.direct(**parsed).to_json() == text
    for name in DAF_BUTLER_FIELDS[:-1]:
        assert parsed[name] == sorted(parsed[name])
        assert [uuid.UUID(s) for s in parsed[name]] == sorted(getattr(provenance, name))


# --- validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "offender", "message"),
    [
        ({"available_inputs": {IN1, IN3}}, IN3, "available_inputs not in predicted_inputs"),
        ({"actual_inputs": {IN3}}, IN3, "actual_inputs not in predicted_inputs"),
        ({"actual_outputs": {OUT_A, OUT_C}}, OUT_C, "actual_outputs not in predicted_outputs"),
        ({"predicted_outputs": {OUT_A, IN2}}, IN2, "both predicted inputs and predicted outputs"),
        (
            {"datastore_records": {DATASTORE: record_data(OUT_A, OUT_B).to_simple()}},
            OUT_B,
            "not actual outputs",
        ),
    ],
)
def test_inconsistent_sets_are_rejected_naming_the_ids(
    changes: dict[str, Any], offender: uuid.UUID, message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message) as info:
        make(**changes)
    assert str(offender) in str(info.value)
    # Same through from_json, as RecordDataError naming the file; direct() does not validate.
    fields = {name: getattr(make(), name) for name in DAF_BUTLER_FIELDS}
    bad = QuantumProvenanceData.direct(**(fields | changes)).to_json()
    with pytest.raises(RecordDataError, match=r"q\.provenance\.json") as info2:
        QuantumProvenanceData.from_json(bad, source="q.provenance.json")
    assert str(offender) in str(info2.value)
    assert isinstance(info2.value, S3qbbError) and isinstance(info2.value, ValueError)
    assert isinstance(info2.value.__cause__, pydantic.ValidationError)


def test_many_offenders_are_abbreviated() -> None:
    extra = {uuid.UUID(int=i) for i in range(1, 12)}
    with pytest.raises(pydantic.ValidationError, match="and 6 more"):
        make(actual_inputs=extra)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(quantum_id="x"), "quantum_id"),
        (lambda d: d.pop("actual_outputs"), "actual_outputs"),
        (lambda d: d["predicted_inputs"].append("not-a-uuid"), "predicted_inputs"),
        (
            lambda d: d["datastore_records"].update({"": d["datastore_records"][DATASTORE]}),
            "datastore_records",
        ),
        (
            lambda d: d["datastore_records"][DATASTORE]["records"][DAF_BUTLER_RECORD_CLASS][OUT_A.hex][
                "file_datastore_records"
            ][0].update(path="../../escape"),
            "path",
        ),
    ],
)
def test_malformed_files_raise_record_data_error(mutate: Any, fragment: str) -> None:
    data = json.loads(make().to_json())
    mutate(data)
    with pytest.raises(RecordDataError, match=fragment):
        QuantumProvenanceData.from_json(json.dumps(data), source="s3://bucket/run/_records/q.provenance.json")


@pytest.mark.parametrize("text", [b"", b"{", b"[]", b"null", b"\xff\xfe"])
def test_not_json_raises_record_data_error(text: bytes) -> None:
    with pytest.raises(RecordDataError, match=r"'f\.json' is not valid QuantumProvenanceData"):
        QuantumProvenanceData.from_json(text, source="f.json")


def test_error_without_source_does_not_echo_values() -> None:
    data = json.loads(make().to_json())
    data["predicted_inputs"] = ["aws_secret_access_key=abc"]
    with pytest.raises(RecordDataError) as info:
        QuantumProvenanceData.from_json(json.dumps(data))
    assert "abc" not in str(info.value)
    assert "Provenance file is not valid" in str(info.value)
