"""The interface of a records store, as the datastores use it.

Two stores implement it: `s3qbb.records.memory.MemoryRecordsStore` (a
quantum's records while it runs) and `s3qbb.records.store.SqliteRecordsStore`
(a SQLite file, or an in-memory database). ``tests/records/test_records_store.py``
runs the same tests on both.
"""

from __future__ import annotations

__all__ = ["RecordsStore", "open_records_store"]

import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from ..core.records import DatastoreRecordData, StoredFileInfo


class RecordsStore(Protocol):
    """Datastore records of one datastore: insert, trash, look up, export, write to a SQLite file.

    See `s3qbb.records.store.SqliteRecordsStore` for each method's contract.
    """

    @property
    def datastore_name(self) -> str:
        """Name of the datastore whose records these are."""

    @property
    def table(self) -> str:
        """Name of the records table."""

    @property
    def in_memory(self) -> bool:
        """Whether the records live in memory."""

    def close(self) -> None:
        """Close the store."""

    def insert(self, infos: Iterable[StoredFileInfo], *, replace: bool = False) -> None:
        """Add records, all or none."""

    def insert_new(self, infos: Iterable[StoredFileInfo]) -> set[uuid.UUID]:
        """Add the records of datasets that have none; return the others."""

    def import_records(self, data: DatastoreRecordData) -> None:
        """Import exported records, all or none."""

    def delete(self, ids: Iterable[uuid.UUID]) -> int:
        """Forget datasets."""

    def move_to_trash(self, ids: Iterable[uuid.UUID]) -> int:
        """Mark datasets as removed."""

    def empty_trash(
        self, ids: Iterable[uuid.UUID] | None = None, *, dry_run: bool = False
    ) -> dict[uuid.UUID, list[StoredFileInfo]]:
        """Remove trashed datasets for good and return their records."""

    def get(self, dataset_id: uuid.UUID) -> list[StoredFileInfo]:
        """Return the records of one live dataset."""

    def get_many(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[StoredFileInfo]]:
        """Return the records of many live datasets."""

    def has(self, dataset_id: uuid.UUID) -> bool:
        """Return whether a dataset is live."""

    def dataset_ids(self) -> set[uuid.UUID]:
        """Return the IDs of the live datasets."""

    def trashed_ids(self) -> set[uuid.UUID]:
        """Return the IDs of the trashed datasets."""

    def export(self, ids: Iterable[uuid.UUID] | None = None) -> DatastoreRecordData:
        """Export records."""

    def flush_to_file(self, path: str | os.PathLike[str]) -> Path:
        """Write every record to one SQLite file."""


def open_records_store(records: RecordsStore | str | os.PathLike[str], datastore_name: str) -> RecordsStore:
    """Return a records store: ``records`` itself, or a new one for a filename.

    Parameters
    ----------
    records : `RecordsStore`, `str` or `os.PathLike`
        A store (returned as is), ``":memory:"`` for a new
        `~s3qbb.records.memory.MemoryRecordsStore`, or the name of a SQLite
        file for a new `~s3qbb.records.store.SqliteRecordsStore`.
    datastore_name : `str`
        Name of the datastore whose records these are (for a new store).

    Returns
    -------
    store : `RecordsStore`
        The store.
    """
    if not isinstance(records, (str, os.PathLike)):
        return records
    if records == ":memory:":
        from .memory import MemoryRecordsStore

        return MemoryRecordsStore(datastore_name=datastore_name)
    from .store import SqliteRecordsStore  # sqlite3 is imported only where a file is used

    return SqliteRecordsStore(records, datastore_name=datastore_name)
