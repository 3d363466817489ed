"""Datastore records: what a datastore knows about each stored artifact.

:class:`StoredFileInfo` is one row of the ``file_datastore_records`` table,
:class:`DatastoreRecordData` groups such rows by dataset ID and table name, and
:class:`SerializedDatastoreRecordData` is their JSON form. The JSON layout and
field names are those of ``lsst.daf.butler`` (``datastore/record_data.py``), so
either library reads files written by the other::

    {
      "dataset_ids": ["<uuid>", ...],
      "records": {
        "<record class>": {
          "<dataset id, 32 hex digits>": {
            "<table name>": [
              {"formatter": ..., "path": ..., "storage_class": ...,
               "component": "__NULL_STRING__", "checksum": ..., "file_size": ...}
            ]
          }
        }
      }
    }

This module is pure: no I/O, no SQLAlchemy.
"""

from __future__ import annotations

__all__ = [
    "DAF_BUTLER_RECORD_CLASS",
    "NULL_COMPONENT",
    "S3QBB_RECORD_CLASS",
    "DatastoreRecordData",
    "SerializedDatastoreRecordData",
    "SerializedStoredFileRecord",
    "StoredFileInfo",
    "check_record_path",
]

import dataclasses
import re
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import pydantic

from ..errors import RecordDataError

NULL_COMPONENT = "__NULL_STRING__"
"""Value of the ``component`` column for a dataset that is not a component.

``component`` is part of the primary key, so it cannot be NULL; daf_butler
uses this placeholder and so do we.
"""

DAF_BUTLER_RECORD_CLASS = "lsst.daf.butler.datastore.stored_file_info.StoredFileInfo"
"""Record class name written into serialized records (daf_butler's ``StoredFileInfo``)."""

S3QBB_RECORD_CLASS = "s3qbb.core.records.StoredFileInfo"
"""Qualified name of :class:`StoredFileInfo`; accepted on read as a record class."""

_ACCEPTED_RECORD_CLASSES = frozenset(
    {
        DAF_BUTLER_RECORD_CLASS,
        S3QBB_RECORD_CLASS,
        # Name written by daf_butler before its package layout changed (DM-41043);
        # daf_butler itself still accepts it.
        "lsst.daf.butler.core.storedFileInfo.StoredFileInfo",
    }
)

_SANITIZED_DOTDOT = "%2E."
"""How `s3qbb.datastores.sanitize.sanitize_segment` writes the value ``..``: a literal name in a key."""
_URI_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_HEX32_RE = re.compile(r"[0-9a-f]{32}")


def check_record_path(path: str) -> str:
    """Check that a record path cannot escape the datastore root.

    Parameters
    ----------
    path : `str`
        Path relative to the datastore root, or an absolute URI with a scheme
        (``s3://bucket/key``, ``file:///data/x``).

    Returns
    -------
    path : `str`
        The path, unchanged.

    Raises
    ------
    ValueError
        Raised if the path is empty, contains NUL or control characters or a
        ``..`` segment, or is relative and starts with ``/``.

    Notes
    -----
    A relative path is an object key below the root, taken literally: neither
    s3qbb nor S3 percent-decodes it. ``%2E.``, how
    `~s3qbb.datastores.sanitize.sanitize_segment` writes a data ID value
    ``..``, is therefore an ordinary name and is accepted; every other
    spelling of ``..`` (``%2e%2e``, ``.%2E`` ...) is one s3qbb never writes
    and is refused, as is any segment decoding to ``..`` in an absolute URI
    (percent-encoded by definition).
    """
    if not path:
        raise ValueError("record path is empty")
    if _CONTROL_RE.search(path):
        raise ValueError(f"record path {path!r:.300} contains NUL or control characters")
    if ".." not in path and "%" not in path and path[0] != "/":
        return path  # the common case: no segment can be '..', and a URI never starts with '/'
    is_uri = _URI_SCHEME_RE.match(path) is not None
    if not is_uri and path.startswith("/"):
        raise ValueError(f"relative record path {path!r:.300} starts with '/'")
    segments = path.split("/")
    if ".." in segments or (
        "%" in path
        and any(
            urllib.parse.unquote(s) == ".." and (is_uri or s != _SANITIZED_DOTDOT)
            for s in segments
            if "%" in s
        )
    ):
        raise ValueError(f"record path {path!r:.300} has a '..' segment")
    return path


def _normalize_dataset_id_key(value: str) -> str:
    if _HEX32_RE.fullmatch(value) is not None:
        return value  # already the normal form (what s3qbb and daf_butler write)
    try:
        return uuid.UUID(value).hex
    except ValueError as err:
        raise ValueError(f"dataset ID key {value!r} is not a UUID") from err


@dataclasses.dataclass(frozen=True, slots=True)
class StoredFileInfo:
    """Datastore-private information about one stored artifact.

    Parameters
    ----------
    dataset_id : `uuid.UUID`
        ID of the dataset the artifact belongs to.
    path : `str`
        Path relative to the datastore root, or an absolute URI.
    formatter : `str`
        Fully qualified name of the formatter that wrote the artifact.
    storage_class : `str`
        Name of the storage class of the stored object.
    component : `str` or `None`
        Component stored in this artifact when the dataset was disassembled;
        `None` otherwise.
    checksum : `str` or `None`
        ``"<ALGORITHM>:<base64 digest>"`` (``"CRC32C:AAAAAA=="``), or `None`
        if not known.
    file_size : `int`
        Size of the artifact in bytes; -1 if not known.
    """

    dataset_id: uuid.UUID
    path: str
    formatter: str
    storage_class: str
    component: str | None
    checksum: str | None
    file_size: int

    def to_record(self) -> dict[str, Any]:
        """Return the row of the records table for this artifact.

        Returns
        -------
        row : `dict` [`str`, `typing.Any`]
            Column name to value; a `None` component is replaced by
            `NULL_COMPONENT`.
        """
        return {
            "dataset_id": self.dataset_id,
            "path": self.path,
            "formatter": self.formatter,
            "storage_class": self.storage_class,
            "component": NULL_COMPONENT if self.component is None else self.component,
            "checksum": self.checksum,
            "file_size": self.file_size,
        }

    @classmethod
    def from_record(cls, row: Mapping[str, Any], dataset_id: uuid.UUID | None = None) -> StoredFileInfo:
        """Construct from a row of the records table.

        Parameters
        ----------
        row : `~collections.abc.Mapping` [`str`, `typing.Any`]
            Column name to value. ``dataset_id`` may be a `uuid.UUID` or a
            string; it may be missing if ``dataset_id`` is given.
        dataset_id : `uuid.UUID`, optional
            Dataset ID to use when the row has none (daf_butler's serialized
            rows key the dataset ID outside the row).

        Returns
        -------
        info : `StoredFileInfo`
            The record. ``component`` equal to `NULL_COMPONENT` or empty
            becomes `None`; a NULL ``file_size`` becomes -1.

        Raises
        ------
        KeyError
            Raised if a column is missing.
        """
        raw_id = row.get("dataset_id", dataset_id)
        if raw_id is None:
            raise KeyError("dataset_id")
        component = row["component"]
        file_size = row["file_size"]
        return cls(
            dataset_id=raw_id if isinstance(raw_id, uuid.UUID) else uuid.UUID(str(raw_id)),
            path=row["path"],
            formatter=row["formatter"],
            storage_class=row["storage_class"],
            component=None if not component or component == NULL_COMPONENT else component,
            checksum=row["checksum"],
            file_size=-1 if file_size is None else int(file_size),
        )

    def update(self, **changes: Any) -> StoredFileInfo:
        """Return a copy with some fields changed.

        Parameters
        ----------
        **changes : `typing.Any`
            New field values, by field name.

        Returns
        -------
        info : `StoredFileInfo`
            The updated copy.
        """
        return dataclasses.replace(self, **changes)


# --- wire models ---------------------------------------------------------

_DatasetIdKey = Annotated[str, pydantic.AfterValidator(_normalize_dataset_id_key)]
# Checked by pydantic-core's (Rust) regex engine: a Python validator per field was a third of the cost of
# validating an export (`extract_provenance_data`). Rust's ``$`` matches only at the very end (Python's
# would also match before a final newline, which the class excludes anyway).
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
_Text = Annotated[str, pydantic.StringConstraints(min_length=1, pattern=_NO_CONTROL)]
_OptionalText = Annotated[str, pydantic.StringConstraints(pattern=_NO_CONTROL)]
_TableName = Annotated[str, pydantic.StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class SerializedStoredFileRecord(pydantic.BaseModel):
    """One serialized row of a file datastore records table.

    The dataset ID is the key the row is filed under; a ``dataset_id`` inside
    the row (older daf_butler layouts) is accepted, checked against that key
    and not written back.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    formatter: _Text
    """Fully qualified name of the formatter."""

    path: Annotated[str, pydantic.AfterValidator(check_record_path)]
    """Path relative to the datastore root, or an absolute URI."""

    storage_class: _Text
    """Name of the storage class."""

    component: _OptionalText
    """Component name, or ``"__NULL_STRING__"`` for none (JSON null is accepted)."""

    checksum: _OptionalText | None
    """``"<ALGORITHM>:<base64 digest>"``, or null if not known."""

    file_size: Annotated[int, pydantic.Field(ge=-1)] | None
    """Size in bytes; -1 or null if not known."""

    dataset_id: uuid.UUID | None = pydantic.Field(default=None, exclude=True)
    """Dataset ID carried inside the row by older layouts; never serialized."""

    @pydantic.field_validator("component", mode="before")
    @classmethod
    def _null_component(cls, value: Any) -> Any:
        return NULL_COMPONENT if value is None or value == "" else value


class SerializedDatastoreRecordData(pydantic.BaseModel):
    """JSON form of :class:`DatastoreRecordData`, laid out as daf_butler's model of the same name.

    ``records`` maps record class name -> dataset ID (32 hex digits; dashed
    UUIDs are accepted and normalized) -> table name -> rows.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    dataset_ids: list[uuid.UUID]
    """IDs of every dataset in the export, including those without records."""

    records: dict[str, dict[_DatasetIdKey, dict[_TableName, list[SerializedStoredFileRecord]]]]
    """Rows by record class name, dataset ID and table name."""

    @pydantic.model_validator(mode="after")
    def _check_consistency(self) -> SerializedDatastoreRecordData:
        known = {dataset_id.hex for dataset_id in self.dataset_ids}
        if len(known) != len(self.dataset_ids):
            raise ValueError("dataset_ids lists a dataset more than once")
        # Dataset and table keys are unique within a record class, so a duplicate row can only be
        # within one list of rows, or in another record class (checked with a set of every row then).
        seen: set[tuple[str, str, str]] | None = set() if len(self.records) > 1 else None
        for class_name, by_dataset in self.records.items():
            if class_name not in _ACCEPTED_RECORD_CLASSES:
                if class_name == "" and not any(rows for t in by_dataset.values() for rows in t.values()):
                    continue  # daf_butler names the class "" when a table has no rows.
                raise ValueError(
                    f"unknown datastore record class {class_name!r}; s3qbb reads only file records "
                    f"({DAF_BUTLER_RECORD_CLASS!r} or {S3QBB_RECORD_CLASS!r})"
                )
            for id_hex, by_table in by_dataset.items():
                if id_hex not in known:
                    raise ValueError(f"records for dataset {uuid.UUID(id_hex)} missing from dataset_ids")
                for table_name, rows in by_table.items():
                    if seen is None and len(rows) == 1 and rows[0].dataset_id is None:
                        continue  # the common case: one row, filed only under its key
                    components: set[str] = set()
                    for row in rows:
                        if row.dataset_id is not None and row.dataset_id.hex != id_hex:
                            raise ValueError(
                                f"row for dataset {row.dataset_id} filed under dataset {uuid.UUID(id_hex)}"
                            )
                        key = (id_hex, table_name, row.component)
                        if row.component in components or (seen is not None and key in seen):
                            raise ValueError(
                                f"duplicate record for dataset {uuid.UUID(id_hex)}, table {table_name!r}, "
                                f"component {row.component!r}"
                            )
                        components.add(row.component)
                        if seen is not None:
                            seen.add(key)
        return self


# --- record data ---------------------------------------------------------


@dataclasses.dataclass
class DatastoreRecordData:
    """Records exported from one datastore, by dataset ID and table name.

    Parameters
    ----------
    records : `dict` [`uuid.UUID`, `dict` [`str`, `list` [`StoredFileInfo`]]]
        Records by dataset ID, then table name. A dataset may map to an empty
        `dict` (known to the export, without records).
    """

    records: dict[uuid.UUID, dict[str, list[StoredFileInfo]]] = dataclasses.field(default_factory=dict)

    @property
    def dataset_ids(self) -> set[uuid.UUID]:
        """IDs of all datasets in this export (`set` [`uuid.UUID`])."""
        return set(self.records)

    def update(self, other: DatastoreRecordData) -> None:
        """Merge another export into this one.

        Parameters
        ----------
        other : `DatastoreRecordData`
            Records to merge. Where ``self`` already has records for a
            ``(dataset ID, table)`` pair, they are kept and ``other``'s are
            ignored: records are always exported for whole datasets.
        """
        for dataset_id, by_table in other.records.items():
            mine = self.records.setdefault(dataset_id, {})
            for table_name, infos in by_table.items():
                existing = mine.setdefault(table_name, [])
                if not existing:
                    existing.extend(infos)

    def subset(self, dataset_ids: Iterable[uuid.UUID]) -> DatastoreRecordData | None:
        """Return the records of some datasets.

        Parameters
        ----------
        dataset_ids : `~collections.abc.Iterable` [`uuid.UUID`]
            Datasets to keep.

        Returns
        -------
        subset : `DatastoreRecordData` or `None`
            A new export sharing the record lists of ``self`` (do not modify
            them), or `None` if none of the datasets is present.
        """
        matching = {
            dataset_id: self.records[dataset_id] for dataset_id in dataset_ids if dataset_id in self.records
        }
        return DatastoreRecordData(records=matching) if matching else None

    def to_simple(self) -> SerializedDatastoreRecordData:
        """Return the serializable form, in daf_butler's layout.

        Returns
        -------
        simple : `SerializedDatastoreRecordData`
            Validated wire model; records are filed under daf_butler's
            ``StoredFileInfo`` class name so daf_butler can read them.

        Raises
        ------
        RecordDataError
            Raised if a record is filed under another dataset's ID.
        pydantic.ValidationError
            Raised if a path, table name or size is not acceptable on the wire.
        """
        by_dataset: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for dataset_id, by_table in self.records.items():
            for table_name, infos in by_table.items():
                if not infos:
                    continue
                rows = []
                for info in infos:
                    if info.dataset_id != dataset_id:
                        raise RecordDataError(
                            f"Record for dataset {info.dataset_id} (path {info.path!r}) is filed under "
                            f"dataset {dataset_id}; rebuild the record data from the records store."
                        )
                    rows.append(
                        {
                            "path": info.path,
                            "formatter": info.formatter,
                            "storage_class": info.storage_class,
                            "component": NULL_COMPONENT if info.component is None else info.component,
                            "checksum": info.checksum,
                            "file_size": info.file_size,
                        }
                    )
                by_dataset.setdefault(dataset_id.hex, {})[table_name] = rows
        records = {DAF_BUTLER_RECORD_CLASS: by_dataset} if by_dataset else {}
        return SerializedDatastoreRecordData.model_validate(
            {"dataset_ids": list(self.records), "records": records}
        )

    @classmethod
    def from_simple(cls, simple: SerializedDatastoreRecordData) -> DatastoreRecordData:
        """Construct from the serializable form.

        Parameters
        ----------
        simple : `SerializedDatastoreRecordData`
            Validated wire model (s3qbb's or daf_butler's JSON).

        Returns
        -------
        data : `DatastoreRecordData`
            Records for every dataset in ``simple.dataset_ids``, in that order.
        """
        records: dict[uuid.UUID, dict[str, list[StoredFileInfo]]] = {
            dataset_id: {} for dataset_id in simple.dataset_ids
        }
        for by_dataset in simple.records.values():
            for id_hex, by_table in by_dataset.items():
                dataset_id = uuid.UUID(id_hex)
                mine = records.setdefault(dataset_id, {})
                for table_name, rows in by_table.items():
                    mine.setdefault(table_name, []).extend(
                        StoredFileInfo(
                            dataset_id=dataset_id,
                            path=row.path,
                            formatter=row.formatter,
                            storage_class=row.storage_class,
                            component=None if row.component == NULL_COMPONENT else row.component,
                            checksum=row.checksum,
                            file_size=-1 if row.file_size is None else row.file_size,
                        )
                        for row in rows
                    )
        return cls(records=records)
