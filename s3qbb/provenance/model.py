"""Per-quantum provenance models: daf_butler's ``QuantumProvenanceData`` and s3qbb's execution report.

Each executed quantum leaves two JSON files (see :mod:`s3qbb.provenance.files`):

- :class:`QuantumProvenanceData`, with exactly the fields and JSON layout of
  ``lsst.daf.butler.QuantumProvenanceData``, so daf_butler reads our files
  with ``QuantumProvenanceData.direct(**json.loads(text))`` or pydantic
  validation, and we read theirs::

    {
      "predicted_inputs": ["<dashed uuid>", ...],
      "available_inputs": [...],
      "actual_inputs": [...],
      "predicted_outputs": [...],
      "actual_outputs": [...],
      "datastore_records": {"<datastore name>": <SerializedDatastoreRecordData>}
    }

- :class:`QuantumExecutionReport`, s3qbb's own versioned section: which task
  ran, how it ended, timings, host, request and cache counters, a redacted
  error. daf_butler ignores it.
"""

from __future__ import annotations

__all__ = [
    "MAX_MESSAGE_CHARS",
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "TRACEBACK_LINES",
    "ErrorInfo",
    "QuantumDatasetCounts",
    "QuantumExecutionReport",
    "QuantumProvenanceData",
    "QuantumStatus",
]

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Self

import pydantic

from ..core.records import (
    NULL_COMPONENT,
    DatastoreRecordData,
    SerializedDatastoreRecordData,
    SerializedStoredFileRecord,
)
from ..errors import RecordDataError
from ._common import _describe, _dump, _Name
from .report import (
    MAX_MESSAGE_CHARS,
    REPORT_FORMAT,
    REPORT_VERSION,
    TRACEBACK_LINES,
    ErrorInfo,
    QuantumDatasetCounts,
    QuantumExecutionReport,
    QuantumStatus,
)

_MAX_IDS_SHOWN = 5


def _format_ids(ids: Iterable[uuid.UUID]) -> str:
    ordered = sorted(ids)
    shown = ", ".join(str(i) for i in ordered[:_MAX_IDS_SHOWN])
    more = len(ordered) - _MAX_IDS_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


# --- daf_butler-compatible provenance ----------------------------------------


def _to_uuid(value: str | uuid.UUID) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _records_direct(
    value: SerializedDatastoreRecordData | Mapping[str, Any],
) -> SerializedDatastoreRecordData:
    """Build record data from trusted JSON without validation (daf_butler's ``direct`` contract)."""
    if isinstance(value, SerializedDatastoreRecordData):
        return value

    def row(raw: Mapping[str, Any]) -> SerializedStoredFileRecord:
        fields = dict(raw)
        if not fields.get("component"):
            fields["component"] = NULL_COMPONENT
        fields.pop("dataset_id", None)  # never serialized; the key it is filed under is the ID
        return SerializedStoredFileRecord.model_construct(**fields)

    records = {
        class_name: {
            _to_uuid(id_key).hex: {table: [row(r) for r in rows] for table, rows in by_table.items()}
            for id_key, by_table in by_dataset.items()
        }
        for class_name, by_dataset in value["records"].items()
    }
    return SerializedDatastoreRecordData.model_construct(
        dataset_ids=[_to_uuid(i) for i in value["dataset_ids"]], records=records
    )


def _canonical_records(simple: SerializedDatastoreRecordData) -> dict[str, Any]:
    """Return the JSON form of record data with every ID list and mapping sorted."""
    dumped = simple.model_dump(mode="json")
    return {
        "dataset_ids": sorted(dumped["dataset_ids"]),
        "records": {
            class_name: {
                id_hex: dict(sorted(by_table.items())) for id_hex, by_table in sorted(by_dataset.items())
            }
            for class_name, by_dataset in sorted(dumped["records"].items())
        },
    }


class QuantumProvenanceData(pydantic.BaseModel):
    """Inputs and outputs of one executed quantum, and the datastore records of its outputs.

    Field names and JSON layout are exactly those of daf_butler's model of
    the same name: each ID set is a JSON list of dashed UUID strings (we
    write them sorted), and ``datastore_records`` maps datastore name to
    `~s3qbb.core.records.SerializedDatastoreRecordData`.

    Validation checks what daf_butler's ``QuantumBackedButler`` guarantees
    when it writes the data: available and actual inputs are predicted
    inputs, actual outputs are predicted outputs, no dataset is both an
    input and an output, and records are only for actual outputs.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    predicted_inputs: frozenset[uuid.UUID]
    """IDs of the datasets predicted as inputs when the quantum graph was built."""

    available_inputs: frozenset[uuid.UUID]
    """IDs of the predicted inputs found in storage when the quantum ran."""

    actual_inputs: frozenset[uuid.UUID]
    """IDs of the inputs the task actually used."""

    predicted_outputs: frozenset[uuid.UUID]
    """IDs of the datasets predicted as outputs when the quantum graph was built."""

    actual_outputs: frozenset[uuid.UUID]
    """IDs of the outputs actually written."""

    datastore_records: dict[_Name, SerializedDatastoreRecordData]
    """Datastore records of the actual outputs, by datastore name."""

    @pydantic.field_serializer(
        "predicted_inputs",
        "available_inputs",
        "actual_inputs",
        "predicted_outputs",
        "actual_outputs",
        when_used="json",
    )
    def _sorted_ids(self, ids: frozenset[uuid.UUID]) -> list[str]:
        return [str(i) for i in sorted(ids)]

    @pydantic.model_validator(mode="after")
    def _check_sets(self) -> Self:
        problems: list[str] = []
        for name, subset, superset in (
            ("available_inputs", self.available_inputs, "predicted_inputs"),
            ("actual_inputs", self.actual_inputs, "predicted_inputs"),
            ("actual_outputs", self.actual_outputs, "predicted_outputs"),
        ):
            extra = subset - getattr(self, superset)
            if extra:
                problems.append(f"{name} not in {superset}: {_format_ids(extra)}")
        both = self.predicted_inputs & self.predicted_outputs
        if both:
            problems.append(f"datasets both predicted inputs and predicted outputs: {_format_ids(both)}")
        for datastore_name, simple in sorted(self.datastore_records.items()):
            stray = set(simple.dataset_ids) - self.actual_outputs
            if stray:
                problems.append(
                    f"datastore {datastore_name!r} has records for datasets that are not actual outputs: "
                    f"{_format_ids(stray)}"
                )
        if problems:
            raise ValueError("inconsistent quantum provenance: " + "; ".join(problems))
        return self

    @classmethod
    def direct(
        cls,
        *,
        predicted_inputs: Iterable[str | uuid.UUID],
        available_inputs: Iterable[str | uuid.UUID],
        actual_inputs: Iterable[str | uuid.UUID],
        predicted_outputs: Iterable[str | uuid.UUID],
        actual_outputs: Iterable[str | uuid.UUID],
        datastore_records: Mapping[str, SerializedDatastoreRecordData | Mapping[str, Any]],
    ) -> QuantumProvenanceData:
        """Construct from trusted data without validation, like daf_butler's ``direct``.

        Parameters
        ----------
        predicted_inputs, available_inputs, actual_inputs : `~collections.abc.Iterable`
            Input dataset IDs, as `uuid.UUID` or strings.
        predicted_outputs, actual_outputs : `~collections.abc.Iterable`
            Output dataset IDs, as `uuid.UUID` or strings.
        datastore_records : `~collections.abc.Mapping`
            Record data by datastore name, as models or their JSON form.

        Returns
        -------
        provenance : `QuantumProvenanceData`
            The provenance; nothing is checked beyond UUID parsing.

        Notes
        -----
        The parameters are keyword-only and exactly the model's fields, so
        ``direct(**json.loads(text))`` fails with `TypeError` on a file with
        other keys. Use `from_json` for files you did not write yourself.
        """
        return cls.model_construct(
            predicted_inputs=frozenset(_to_uuid(i) for i in predicted_inputs),
            available_inputs=frozenset(_to_uuid(i) for i in available_inputs),
            actual_inputs=frozenset(_to_uuid(i) for i in actual_inputs),
            predicted_outputs=frozenset(_to_uuid(i) for i in predicted_outputs),
            actual_outputs=frozenset(_to_uuid(i) for i in actual_outputs),
            datastore_records={name: _records_direct(value) for name, value in datastore_records.items()},
        )

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str | None = None) -> QuantumProvenanceData:
        """Read and validate provenance JSON written by s3qbb or daf_butler.

        Parameters
        ----------
        data : `bytes` or `str`
            The JSON text.
        source : `str`, optional
            Name of the file or URI it came from, for error messages.

        Returns
        -------
        provenance : `QuantumProvenanceData`
            The validated provenance.

        Raises
        ------
        RecordDataError
            Raised if the text is not JSON, lacks or adds fields, or the ID
            sets or records are inconsistent.
        """
        try:
            return cls.model_validate_json(data)
        except pydantic.ValidationError as err:
            where = f" {source!r}" if source else ""
            raise RecordDataError(
                f"Provenance file{where} is not valid QuantumProvenanceData: {_describe(err)}. "
                "Check that it was written by s3qbb or daf_butler and was not truncated."
            ) from err

    def to_json(self) -> bytes:
        """Serialize in daf_butler's layout, deterministically.

        Returns
        -------
        data : `bytes`
            UTF-8 JSON with the six daf_butler fields in their order, every
            ID list and mapping sorted, 2-space indent and a final newline;
            equal models give equal bytes.
        """
        dumped = self.model_dump(mode="json", exclude={"datastore_records"})
        dumped["datastore_records"] = {
            name: _canonical_records(simple) for name, simple in sorted(self.datastore_records.items())
        }
        return _dump(dumped)

    def datastore_record_data(self) -> dict[str, DatastoreRecordData]:
        """Return the datastore records as domain objects.

        Returns
        -------
        records : `dict` [`str`, `~s3qbb.core.records.DatastoreRecordData`]
            Record data by datastore name.
        """
        return {name: DatastoreRecordData.from_simple(s) for name, s in self.datastore_records.items()}
