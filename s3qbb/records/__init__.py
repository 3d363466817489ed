"""Datastore records: in memory while a quantum runs (`MemoryRecordsStore`), in SQLite files.

`SqliteRecordsStore` runs on the standard library's `sqlite3`; only
`make_schema` (the same tables described for SQLAlchemy) imports SQLAlchemy.
Both stores keep one contract (`s3qbb.records.contract.RecordsStore`). Names
are loaded on first attribute access.
"""

from __future__ import annotations

__all__ = [
    "RECORDS_SCHEMA_VERSION",
    "MemoryRecordsStore",
    "RecordsSchema",
    "SqliteRecordsStore",
    "make_schema",
]

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .memory import MemoryRecordsStore
    from .schema import RECORDS_SCHEMA_VERSION, RecordsSchema, make_schema
    from .store import SqliteRecordsStore

_WHERE = {
    "RECORDS_SCHEMA_VERSION": ".schema",
    "RecordsSchema": ".schema",
    "make_schema": ".schema",
    "SqliteRecordsStore": ".store",
    "MemoryRecordsStore": ".memory",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
