"""`s3qbb.core.wire_read.quantum_from_json`: the quantum the models read, or `None` for them to decide.

Its one rule: whatever it returns is what ``quantum_from_simple(SerializedQuantum.model_validate_json(...))``
returns for the same document; a document the models refuse, it refuses too (returns `None`). The
tests check the rule on the golden quantum, on generated quanta, and on mutations of both forms.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_wire import GOLDEN, UNIVERSE, _assert_quantum_equal, refs

from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.core.quantum import Quantum
from s3qbb.core.records import DAF_BUTLER_RECORD_CLASS, DatastoreRecordData, StoredFileInfo
from s3qbb.core.wire import SerializedQuantum, quantum_from_simple, quantum_to_simple
from s3qbb.core.wire_read import quantum_from_json

GOLDEN_QUANTUM = (GOLDEN / "quantum.json").read_text()


def _by_models(data: str | bytes) -> Quantum | Exception:
    try:
        return quantum_from_simple(SerializedQuantum.model_validate_json(data), UNIVERSE)
    except Exception as err:  # what the models refuse
        return err


def _check(data: str | bytes) -> Quantum | None:
    """Apply the rule to one document; return what the plain reader returned."""
    plain = quantum_from_json(data, UNIVERSE)
    models = _by_models(data)
    if plain is not None:
        assert not isinstance(models, Exception), f"read a document the models refuse: {models}"
        _assert_quantum_equal(plain, models)
    return plain


def _with_records(quantum: Quantum) -> Quantum:
    """The quantum with datastore records for its inputs, as a batch job's description has them."""
    records = DatastoreRecordData(
        records={
            ref.id: {
                "file_datastore_records": [
                    StoredFileInfo(
                        dataset_id=ref.id,
                        path=f"run/{ref.datasetType.name}/{ref.id}.json",
                        formatter="s3qbb.formatters.json.JsonFormatter",
                        storage_class=ref.datasetType.storageClass.name,
                        component=None,
                        checksum="CRC32C:9ONpcA==",
                        file_size=759,
                    )
                ]
            }
            for ref in quantum.input_refs()
        }
    )
    return Quantum(
        id=quantum.id,
        taskLabel="t",
        taskName="m.t",
        inputs=quantum.input_refs(),
        outputs=quantum.output_refs(),
        datastore_records={"S3Datastore": records} if records.records else {},
    )


def test_the_golden_quantum_is_read_plainly() -> None:
    assert _check(GOLDEN_QUANTUM) is not None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(refs(), min_size=1, max_size=6, unique_by=lambda r: r.id), st.data())
def test_generated_quanta_are_read_plainly(all_refs: list[DatasetRef], data: st.DataObject) -> None:
    by_name: dict[str, DatasetRef] = {}
    for ref in all_refs:
        by_name.setdefault(ref.datasetType.name, ref)
    chosen = list(by_name.values())
    split = data.draw(st.integers(min_value=0, max_value=len(chosen)))
    quantum = _with_records(Quantum(id=data.draw(st.uuids()), inputs=chosen[:split], outputs=chosen[split:]))
    text = quantum_to_simple(quantum).model_dump_json()
    plain = _check(text)
    assert plain is not None
    _assert_quantum_equal(plain, quantum)


def _job_quantum() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(GOLDEN_QUANTUM)
    assert doc["datastoreRecords"], "the golden quantum carries records"
    return doc


def _records(doc: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = next(iter(doc["datastoreRecords"].values()))
    return data


def _first_row(doc: dict[str, Any]) -> dict[str, Any]:
    by_dataset = next(iter(_records(doc)["records"].values()))
    row: dict[str, Any] = next(iter(next(iter(by_dataset.values())).values()))[0]
    return row


def _first_ref(doc: dict[str, Any]) -> dict[str, Any]:
    ref: dict[str, Any] = next(iter(doc["inputs"].values()))[0]
    return ref


_Path = Callable[[dict[str, Any]], dict[str, Any]]
"""Where in a document a mutation applies."""


def _set(path: _Path, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        path(doc)[key] = value

    return mutate


def _top(doc: dict[str, Any]) -> dict[str, Any]:
    return doc


def _type(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(iter(doc["datasetTypeMapping"].values()))
    return found


def _data_id(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = _first_ref(doc)["dataId"]["dataId"]
    return found


def _drop(path: _Path, key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        del path(doc)[key]

    return mutate


def _dashed_key(doc: dict[str, Any]) -> None:
    by_dataset = next(iter(_records(doc)["records"].values()))
    key = next(iter(by_dataset))
    by_dataset[str(uuid.UUID(key))] = by_dataset.pop(key)


def _unknown_key(doc: dict[str, Any]) -> None:
    by_dataset = next(iter(_records(doc)["records"].values()))
    by_dataset[uuid.uuid4().hex] = by_dataset.pop(next(iter(by_dataset)))


def _second_class(doc: dict[str, Any]) -> None:
    records = _records(doc)["records"]
    records["s3qbb.core.records.StoredFileInfo"] = copy.deepcopy(records[DAF_BUTLER_RECORD_CLASS])


def _duplicate_row(doc: dict[str, Any]) -> None:
    by_dataset = next(iter(_records(doc)["records"].values()))
    rows = next(iter(next(iter(by_dataset.values())).values()))
    rows.append(dict(rows[0]))


def _duplicate_id(doc: dict[str, Any]) -> None:
    ids = _records(doc)["dataset_ids"]
    ids.append(ids[0])


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "newer version": _set(_top, "version", 2),
    "negative version": _set(_top, "version", -1),
    "version as bool": _set(_top, "version", True),
    "version as float": _set(_top, "version", 1.0),
    "nested newer version": _set(_type, "version", 2),
    "braced id": _set(_top, "id", "{3f1c9a52-7d4e-4b8a-9c21-0e5f6a7b8c9d}"),
    "urn id": _set(_top, "id", "urn:uuid:3f1c9a52-7d4e-4b8a-9c21-0e5f6a7b8c9d"),
    "uppercase id": _set(_top, "id", "3F1C9A52-7D4E-4B8A-9C21-0E5F6A7B8C9D"),
    "simple id": _set(_top, "id", "3f1c9a527d4e4b8a9c210e5f6a7b8c9d"),
    "short id": _set(_top, "id", "3f1c9a52-7d4e-4b8a-9c21-0e5f6a7b8c9"),
    "integer id": _set(_top, "id", 12),
    "no id": _drop(_top, "id"),
    "unknown top-level field": _set(_top, "comment", "ignored by the wire models"),
    "task name as number": _set(_top, "taskName", 3),
    "null mapping": _set(_top, "datasetTypeMapping", None),
    "null inputs": _set(_top, "inputs", None),
    "no inputs": _drop(_top, "inputs"),
    "data ID value as float": _set(_data_id, "detector", 94.0),
    "data ID value as bool": _set(_data_id, "detector", True),
    "data ID value as list": _set(_data_id, "detector", [94]),
    "data ID value as text": _set(_data_id, "detector", "94"),
    "data ID value out of range": _set(_data_id, "detector", 2**70),
    "calibration as number": _set(_type, "isCalibration", 1),
    "null dimensions": _set(_type, "dimensions", None),
    "dimensions as text": _set(_type, "dimensions", "detector"),
    "unknown storage class": _set(_type, "storageClass", "NoSuchClass"),
    "ref without run": _set(_first_ref, "run", None),
    "ref run as number": _set(_first_ref, "run", 1),
    "unknown ref field": _set(_first_ref, "extra", 1),
    "row extra field": _set(_first_row, "extra", 1),
    "row dataset_id": _set(_first_row, "dataset_id", "3f1c9a52-7d4e-4b8a-9c21-0e5f6a7b8c9d"),
    "row without checksum": _drop(_first_row, "checksum"),
    "row null component": _set(_first_row, "component", None),
    "row empty component": _set(_first_row, "component", ""),
    "row component": _set(_first_row, "component", "summary"),
    "row null checksum": _set(_first_row, "checksum", None),
    "row null size": _set(_first_row, "file_size", None),
    "row size -1": _set(_first_row, "file_size", -1),
    "row size -2": _set(_first_row, "file_size", -2),
    "row size as float": _set(_first_row, "file_size", 12.0),
    "row size as bool": _set(_first_row, "file_size", False),
    "row empty formatter": _set(_first_row, "formatter", ""),
    "row formatter with a tab": _set(_first_row, "formatter", "a\tb"),
    "row path escaping the root": _set(_first_row, "path", "../x.json"),
    "row absolute path": _set(_first_row, "path", "/x.json"),
    "row URI path": _set(_first_row, "path", "s3://bucket/x.json"),
    "row empty path": _set(_first_row, "path", ""),
    "row checksum with a newline": _set(_first_row, "checksum", "CRC32C:a\n"),
    "records without dataset_ids": _drop(_records, "dataset_ids"),
    "records extra field": _set(_records, "version", 1),
    "dashed dataset key": _dashed_key,
    "dataset key not in dataset_ids": _unknown_key,
    "second record class": _second_class,
    "duplicate row": _duplicate_row,
    "duplicate dataset ID": _duplicate_id,
    "unknown record class": lambda doc: _records(doc)["records"].update(
        {"x.Y": _records(doc)["records"].pop(DAF_BUTLER_RECORD_CLASS)}
    ),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_mutated_document_is_read_as_the_models_read_it(name: str) -> None:
    doc = _job_quantum()
    MUTATIONS[name](doc)
    _check(json.dumps(doc))
    _check(json.dumps(doc, indent=2).encode())


@pytest.mark.parametrize(
    "data",
    [
        GOLDEN_QUANTUM.replace('"isr"', '"\\u0069sr"'),  # an escape: left to the models
        GOLDEN_QUANTUM.replace('"isr"', '"\\ud800"'),  # a lone surrogate
        GOLDEN_QUANTUM.replace('"taskLabel": "isr"', '"taskLabel": "isr", "taskLabel": "other"'),
        "\ufeff" + GOLDEN_QUANTUM,
        GOLDEN_QUANTUM.encode("utf-16"),
        GOLDEN_QUANTUM.replace('"detector": 94', '"detector": NaN'),
        GOLDEN_QUANTUM + " x",
        "[]",
        "null",
        "",
        b"\xff",
    ],
)
def test_documents_outside_the_plain_form_are_left_to_the_models(data: str | bytes) -> None:
    assert _check(data) is None


def test_load_quantum_reads_a_plain_description_without_the_wire_models(tmp_path: Any) -> None:
    path = tmp_path / "quantum.json"
    path.write_text(GOLDEN_QUANTUM)
    code = (
        "import sys\n"
        "from s3qbb.batch.execution import load_quantum\n"
        "from s3qbb.core.dimensions import DimensionUniverse\n"
        f"quantum = load_quantum({str(path)!r}, DimensionUniverse())\n"
        "print(quantum.taskLabel, 's3qbb.core.wire' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["isr", "False"]
