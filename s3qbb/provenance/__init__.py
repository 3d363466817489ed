"""Per-quantum provenance: daf_butler-compatible provenance, s3qbb execution reports, file names.

A quantum leaves, in ``<run>/_records/`` beside its outputs, its datastore
records (SQLite), a `QuantumProvenanceData` JSON file that daf_butler can read,
and a `QuantumExecutionReport` JSON file with s3qbb's own execution details.
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

from .files import (
    HostInfo,
    RecordsFileKind,
    host_info,
    parse_records_key,
    provenance_key,
    records_key,
    records_prefix,
    redact,
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
