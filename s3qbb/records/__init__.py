"""Datastore records in SQLite.

The store (`SqliteRecordsStore`) runs on the standard library's `sqlite3`;
only `make_schema` (the same tables described for SQLAlchemy) imports
SQLAlchemy. Names are loaded on first attribute access.
"""

from __future__ import annotations

__all__ = ["RECORDS_SCHEMA_VERSION", "RecordsSchema", "SqliteRecordsStore", "make_schema"]

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .schema import RECORDS_SCHEMA_VERSION, RecordsSchema, make_schema
    from .store import SqliteRecordsStore

_WHERE = {
    "RECORDS_SCHEMA_VERSION": ".schema",
    "RecordsSchema": ".schema",
    "make_schema": ".schema",
    "SqliteRecordsStore": ".store",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
