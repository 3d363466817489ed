"""Per-quantum provenance: daf_butler-compatible provenance, s3qbb execution reports, file names.

A quantum leaves, in ``<run>/_records/`` beside its outputs, its datastore
records (SQLite), a `QuantumProvenanceData` JSON file that daf_butler can read,
and a `QuantumExecutionReport` JSON file with s3qbb's own execution details.
The names below are imported on first use.
"""

from __future__ import annotations

__all__ = [
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "ErrorInfo",
    "HostInfo",
    "QuantumDatasetCounts",
    "QuantumExecutionReport",
    "QuantumProvenanceData",
    "QuantumStatus",
    "RecordsFileKind",
    "host_info",
    "parse_records_key",
    "provenance_key",
    "records_key",
    "records_prefix",
    "redact",
    "report_key",
    "utc_now",
]

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..redaction import redact
    from .files import (
        HostInfo,
        RecordsFileKind,
        host_info,
        parse_records_key,
        provenance_key,
        records_key,
        records_prefix,
        report_key,
        utc_now,
    )
    from .model import (
        REPORT_FORMAT,
        REPORT_VERSION,
        ErrorInfo,
        QuantumDatasetCounts,
        QuantumExecutionReport,
        QuantumProvenanceData,
        QuantumStatus,
    )

_WHERE = {
    **dict.fromkeys(
        ("HostInfo", "RecordsFileKind", "host_info", "parse_records_key", "provenance_key", "records_key",
         "records_prefix", "report_key", "utc_now"),
        ".files",
    ),
    **dict.fromkeys(
        ("REPORT_FORMAT", "REPORT_VERSION", "ErrorInfo", "QuantumDatasetCounts", "QuantumExecutionReport",
         "QuantumProvenanceData", "QuantumStatus"),
        ".model",
    ),
    "redact": "..redaction",
}  # fmt: skip
# Loaded on first use: a batch job needs the file names long before (and pydantic models only
# after) its task has run.


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
