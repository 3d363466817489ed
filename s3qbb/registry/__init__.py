"""Central registry of a run's datasets, datastore records, quanta and provenance (SQLite or PostgreSQL).

After the batch jobs of a run have finished, `Registry.ingest_run` reads the
files each quantum left in ``<run>/_records/`` and records, once and
idempotently: dataset types, runs, datasets (ID, type, run, data ID),
datastore records, quanta (task, status, times, host) and the provenance
edges between quanta and datasets. Queries (`Registry.datasets`,
`Registry.provenance`, `Registry.quantum`) return plain data.

SQLAlchemy is imported by this package's modules, so ``import s3qbb`` does
not pay for it.
"""

from __future__ import annotations

__all__ = [
    "DATASET_ROLES",
    "REGISTRY_SCHEMA_VERSION",
    "DatasetRole",
    "DatasetRow",
    "IngestFailure",
    "IngestProgress",
    "IngestSummary",
    "ProvenanceTree",
    "QuantumRow",
    "Registry",
    "StoredRecord",
    "TextProgressBar",
]

from .ingest import TextProgressBar
from .registry import Registry
from .results import (
    DatasetRow,
    IngestFailure,
    IngestProgress,
    IngestSummary,
    ProvenanceTree,
    QuantumRow,
    StoredRecord,
)
from .schema import DATASET_ROLES, REGISTRY_SCHEMA_VERSION, DatasetRole
