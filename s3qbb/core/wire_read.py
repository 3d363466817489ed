"""Reading the wire form back into core objects, and a quantum description without the pydantic models.

`quantum_from_simple`, `dataset_ref_from_simple` and `dataset_type_from_simple`
read the models of `s3qbb.core.wire` (which exports them too); they only read
attributes, so they do not need those models to be built.

`quantum_from_json` reads a quantum description (``SerializedQuantum`` JSON)
with `json` and plain checks, without importing `s3qbb.core.wire`, whose
models a batch job would otherwise build before its first put. It accepts only
documents in the plain form s3qbb writes, which it checks at least as strictly
as the models (exact JSON types, canonical UUIDs, no escapes, no duplicate
keys, the checks of `~s3qbb.core.records.SerializedDatastoreRecordData`); for
anything else it returns `None` and the caller validates the document with the
models, which accept it or report the error, as before.
"""

from __future__ import annotations

__all__ = [
    "dataset_ref_from_simple",
    "dataset_type_from_simple",
    "quantum_from_json",
    "quantum_from_simple",
]

import json
import re
import uuid
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from ..errors import DatasetTypeError
from .dataset_ref import DatasetRef
from .dataset_type import DatasetType
from .dimensions import DataCoordinate, DimensionUniverse
from .quantum import Quantum
from .records import (
    _ACCEPTED_RECORD_CLASSES,
    _CONTROL_RE,
    _HEX32_RE,
    NULL_COMPONENT,
    DatastoreRecordData,
    check_record_path,
)

if TYPE_CHECKING:
    from .storage_class import StorageClassFactory
    from .wire import SerializedDatasetRef, SerializedDatasetType, SerializedQuantum


def dataset_type_from_simple(
    simple: SerializedDatasetType,
    universe: DimensionUniverse,
    storage_classes: StorageClassFactory | None = None,
) -> DatasetType:
    """Rebuild a dataset type.

    Raises
    ------
    DatasetTypeError
        If the storage class or dimensions are missing or unknown.
    """
    if simple.storageClass is None or simple.dimensions is None:
        raise DatasetTypeError(
            f"Serialized dataset type {simple.name!r} lacks its storage class or dimensions."
        )
    return DatasetType(
        simple.name,
        simple.dimensions,
        simple.storageClass,
        simple.parentStorageClass,
        universe=universe,
        isCalibration=simple.isCalibration,
        storage_classes=storage_classes,
    )


def dataset_ref_from_simple(
    simple: SerializedDatasetRef,
    universe: DimensionUniverse,
    storage_classes: StorageClassFactory | None = None,
    dataset_type: DatasetType | None = None,
) -> DatasetRef:
    """Rebuild a dataset ref; ``dataset_type`` is needed for minimal refs.

    Raises
    ------
    DatasetTypeError
        If no dataset type is available.
    DataIdError
        If the data ID is invalid.
    """
    if dataset_type is None:
        if simple.datasetType is None:
            raise DatasetTypeError(f"Serialized ref {simple.id} has no dataset type and none was given.")
        dataset_type = dataset_type_from_simple(simple.datasetType, universe, storage_classes)
    if simple.component is not None and not dataset_type.isComponent():
        dataset_type = dataset_type.makeComponentDatasetType(simple.component, storage_classes)
    if simple.run is None or simple.dataId is None:
        raise DatasetTypeError(f"Serialized ref {simple.id} lacks its run or data ID; it cannot be resolved.")
    data_id = DataCoordinate.standardize(simple.dataId.dataId, dimensions=dataset_type.dimensions)
    return DatasetRef(dataset_type, data_id, simple.run, id=simple.id)


def quantum_from_simple(
    simple: SerializedQuantum,
    universe: DimensionUniverse,
    storage_classes: StorageClassFactory | None = None,
) -> Quantum:
    """Rebuild a quantum.

    Raises
    ------
    DatasetTypeError
        If a ref names a dataset type missing from ``datasetTypeMapping``.
    """
    types = {
        n: dataset_type_from_simple(s, universe, storage_classes)
        for n, s in simple.datasetTypeMapping.items()
    }

    def refs(group: dict[str, list[SerializedDatasetRef]]) -> dict[DatasetType, list[DatasetRef]]:
        out: dict[DatasetType, list[DatasetRef]] = {}
        for name, items in group.items():
            if name not in types:
                raise DatasetTypeError(
                    f"Serialized quantum {simple.id} uses dataset type {name!r} with no definition."
                )
            out[types[name]] = [
                dataset_ref_from_simple(r, universe, storage_classes, types[name]) for r in items
            ]
        return out

    data_id = None
    if simple.dataId is not None:
        data_id = DataCoordinate.standardize(simple.dataId.dataId, universe=universe)
    return Quantum(
        id=simple.id,
        taskName=simple.taskName,
        taskLabel=simple.taskLabel,
        dataId=data_id,
        initInputs=refs(simple.initInputs),
        inputs=refs(simple.inputs),
        outputs=refs(simple.outputs),
        datastore_records={n: DatastoreRecordData.from_simple(d) for n, d in simple.datastoreRecords.items()},
    )


# --- the plain reader ------------------------------------------------------------------------------


class _NotPlainError(Exception):
    """The document is not in the plain form `quantum_from_json` reads: the models decide."""


_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}"
)
_TABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WIRE_VERSION = 1  # s3qbb.core.wire.WIRE_VERSION (not imported: that module is what this one avoids)
_RECORD_ROW_KEYS = frozenset({"formatter", "path", "storage_class", "component", "checksum", "file_size"})


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _NotPlainError("duplicate key")
    return found


def _object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _NotPlainError("not an object")
    return value


def _versioned(value: Any) -> dict[str, Any]:
    found = _object(value)
    version = found.get("version", _WIRE_VERSION)
    if type(version) is not int or not 0 <= version <= _WIRE_VERSION:
        raise _NotPlainError("version")
    return found


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _NotPlainError("not a string")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _uuid(value: Any) -> uuid.UUID:
    if type(value) is not str or _UUID_RE.fullmatch(value) is None:
        raise _NotPlainError("not a canonical UUID")
    return uuid.UUID(value)


def _list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise _NotPlainError("not an array")
    return value


def _data_id(value: Any) -> SimpleNamespace | None:
    if value is None:
        return None
    found = _versioned(value)
    if "dataId" not in found:
        raise _NotPlainError("no dataId")
    values = _object(found["dataId"])
    for item in values.values():
        if type(item) is not int and type(item) is not str:
            raise _NotPlainError("data ID value")
    return SimpleNamespace(dataId=values)


def _dataset_type(value: Any) -> SimpleNamespace | None:
    if value is None:
        return None
    found = _versioned(value)
    if "name" not in found:
        raise _NotPlainError("no name")
    dimensions = found.get("dimensions")
    if dimensions is not None:
        dimensions = [_text(d) for d in _list(dimensions)]
    calibration = found.get("isCalibration", False)
    if type(calibration) is not bool:
        raise _NotPlainError("isCalibration")
    return SimpleNamespace(
        name=_text(found["name"]),
        storageClass=_optional_text(found.get("storageClass")),
        dimensions=dimensions,
        parentStorageClass=_optional_text(found.get("parentStorageClass")),
        isCalibration=calibration,
    )


def _ref(value: Any) -> SimpleNamespace:
    found = _versioned(value)
    if "id" not in found:
        raise _NotPlainError("no id")
    return SimpleNamespace(
        id=_uuid(found["id"]),
        datasetType=_dataset_type(found.get("datasetType")),
        dataId=_data_id(found.get("dataId")),
        run=_optional_text(found.get("run")),
        component=_optional_text(found.get("component")),
    )


def _refs(value: Any) -> dict[str, list[SimpleNamespace]]:
    return {name: [_ref(r) for r in _list(items)] for name, items in _object(value).items()}


def _plain_text(value: Any, *, empty: bool) -> str:
    # pydantic.StringConstraints(min_length=1 unless empty, pattern=no control character).
    text = _text(value)
    if (not text and not empty) or _CONTROL_RE.search(text) is not None:
        raise _NotPlainError("text")
    return text


def _record_row(value: Any) -> SimpleNamespace:
    found = _object(value)
    if found.keys() != _RECORD_ROW_KEYS:  # every field required, no dataset_id inside, nothing else
        raise _NotPlainError("record row keys")
    try:
        path = check_record_path(_text(found["path"]))
    except ValueError as err:
        raise _NotPlainError("record path") from err
    component = found["component"]
    component = NULL_COMPONENT if component is None or component == "" else _plain_text(component, empty=True)
    checksum = found["checksum"]
    size = found["file_size"]
    if size is not None and (type(size) is not int or size < -1):
        raise _NotPlainError("file_size")
    return SimpleNamespace(
        formatter=_plain_text(found["formatter"], empty=False),
        path=path,
        storage_class=_plain_text(found["storage_class"], empty=False),
        component=component,
        checksum=None if checksum is None else _plain_text(checksum, empty=True),
        file_size=size,
    )


def _record_data(value: Any) -> SimpleNamespace:
    # SerializedDatastoreRecordData (extra="forbid") and its consistency check, in the common case of
    # one record class; anything else (several classes, daf_butler's "" class, dashed keys) is not plain.
    found = _object(value)
    if found.keys() != {"dataset_ids", "records"}:
        raise _NotPlainError("record data keys")
    dataset_ids = [_uuid(i) for i in _list(found["dataset_ids"])]
    known = {dataset_id.hex for dataset_id in dataset_ids}
    classes = _object(found["records"])
    if len(known) != len(dataset_ids) or len(classes) > 1:
        raise _NotPlainError("dataset_ids or record classes")
    records: dict[str, dict[str, dict[str, list[SimpleNamespace]]]] = {}
    for class_name, by_dataset in classes.items():
        if class_name not in _ACCEPTED_RECORD_CLASSES:
            raise _NotPlainError("record class")
        records[class_name] = {}
        for id_hex, by_table in _object(by_dataset).items():
            if _HEX32_RE.fullmatch(id_hex) is None or id_hex not in known:
                raise _NotPlainError("dataset ID key")
            tables = records[class_name][id_hex] = {}
            for table_name, rows in _object(by_table).items():
                if _TABLE_RE.fullmatch(table_name) is None:
                    raise _NotPlainError("table name")
                parsed = [_record_row(row) for row in _list(rows)]
                if len({row.component for row in parsed}) != len(parsed):
                    raise _NotPlainError("duplicate record")
                tables[table_name] = parsed
    return SimpleNamespace(dataset_ids=dataset_ids, records=records)


def quantum_from_json(data: bytes | str, universe: DimensionUniverse) -> Quantum | None:
    """Read a quantum description in the plain form s3qbb writes, without the pydantic models.

    Parameters
    ----------
    data : `bytes` or `str`
        ``SerializedQuantum`` JSON.
    universe : `~s3qbb.core.dimensions.DimensionUniverse`
        Dimension universe of its data IDs.

    Returns
    -------
    quantum : `~s3qbb.core.quantum.Quantum` or `None`
        The quantum `quantum_from_simple` rebuilds from
        ``SerializedQuantum.model_validate_json(data)``; `None` if the
        document is not in the plain form (or is invalid): validate it with
        the models then, which read it or say what is wrong.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if "\\u" in text:  # escapes: the models' JSON parser decides about surrogates
            return None
        found = _versioned(json.loads(text, object_pairs_hook=_pairs))
        if "id" not in found:
            return None
        simple = SimpleNamespace(
            id=_uuid(found["id"]),
            taskName=_optional_text(found.get("taskName")),
            taskLabel=_optional_text(found.get("taskLabel")),
            dataId=_data_id(found.get("dataId")),
            datasetTypeMapping={
                name: _dataset_type(_object(t))
                for name, t in _object(found.get("datasetTypeMapping", {})).items()
            },
            initInputs=_refs(found.get("initInputs", {})),
            inputs=_refs(found.get("inputs", {})),
            outputs=_refs(found.get("outputs", {})),
            datastoreRecords={
                name: _record_data(d) for name, d in _object(found.get("datastoreRecords", {})).items()
            },
        )
        return quantum_from_simple(cast("SerializedQuantum", simple), universe)
    except (_NotPlainError, ValueError, TypeError, KeyError, RecursionError):
        # Not plain, or invalid (a DatasetTypeError, DataIdError ... is a ValueError): the models say.
        return None
