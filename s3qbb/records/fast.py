"""The hot statements of a records store, run on the DB-API connection (no SQLAlchemy per call)."""

from __future__ import annotations

__all__ = ["FastStatements"]

import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

from .names import DATASET_LOCATION_TABLE

if TYPE_CHECKING:
    import sqlalchemy as sa


class FastStatements:
    """The three hot statements (``has``, ``get``, one-dataset ``insert``) on the DB-API connection.

    SQLAlchemy's per-call overhead (~60-200 us) is 10-30 times the cost of
    these single-row statements on SQLite, and a put or get runs one of them
    each; everything else goes through SQLAlchemy Core.
    """

    def __init__(self, engine: sa.Engine, table: str, datastore_name: str) -> None:
        # The engine holds one pooled connection (StaticPool); the store's lock serializes its use.
        self.conn: sqlite3.Connection = engine.raw_connection().driver_connection  # type: ignore[assignment]
        self.name = datastore_name
        columns = "r.dataset_id, r.path, r.formatter, r.storage_class, r.component, r.checksum, r.file_size"
        live = f"JOIN {DATASET_LOCATION_TABLE} AS l ON l.dataset_id = r.dataset_id AND l.datastore_name = ?"
        self.has_sql = f"SELECT 1 FROM {table} AS r {live} WHERE r.dataset_id = ? LIMIT 1"
        self.get_sql = (
            f"SELECT {columns} FROM {table} AS r {live} WHERE r.dataset_id = ? ORDER BY r.component"
        )
        self.exists_sql = f"SELECT 1 FROM {table} WHERE dataset_id = ? LIMIT 1"
        self.insert_sql = (
            f"INSERT INTO {table} "
            "(dataset_id, path, formatter, storage_class, component, checksum, file_size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self.locate_sql = (
            f"INSERT OR IGNORE INTO {DATASET_LOCATION_TABLE} (datastore_name, dataset_id) VALUES (?, ?)"
        )

    def has(self, dataset_id: uuid.UUID) -> bool:
        """Return whether the dataset has live records."""
        return self.conn.execute(self.has_sql, (self.name, dataset_id.hex)).fetchone() is not None

    def get(self, dataset_id: uuid.UUID) -> list[Any]:
        """Return the rows of the dataset's live records."""
        return self.conn.execute(self.get_sql, (self.name, dataset_id.hex)).fetchall()

    def insert_one_dataset(self, dataset_id: uuid.UUID, rows: list[tuple[Any, ...]]) -> bool:
        """Insert the records of one dataset; return `False` (inserting nothing) if it has records."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")  # writers take the write lock up front (see make_engine)
        try:
            if conn.execute(self.exists_sql, (dataset_id.hex,)).fetchone() is not None:
                conn.execute("ROLLBACK")
                return False
            conn.executemany(self.insert_sql, rows)
            conn.execute(self.locate_sql, (self.name, dataset_id.hex))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return True
