"""Datastore records of one quantum in Python dictionaries, written to SQLite when the quantum ends.

A quantum-backed butler keeps its records in memory while its task runs and
writes them to one SQLite file at the end. `MemoryRecordsStore` holds them in
dictionaries under one lock: a put records its dataset in about 2 us where an
in-memory SQLite database needs six statements (about 25-40 us, the largest
share of s3qbb's own CPU per small put; measured with
``benchmarks.shipped``). It keeps `s3qbb.records.store.SqliteRecordsStore`'s
semantics exactly: the same rows, trash and location states, orders, errors
and all-or-nothing writes (``tests/records/test_records_store.py`` runs the
same tests on both), and :meth:`MemoryRecordsStore.flush_to_file` writes the
file the SQLite store would write.
"""

from __future__ import annotations

__all__ = ["MemoryRecordsStore"]

import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Self

from ..core.records import NULL_COMPONENT, DatastoreRecordData, StoredFileInfo
from ..errors import ConfigError, RecordDataError, RecordExistsError, RecordsStoreError
from .names import DEFAULT_RECORDS_TABLE, check_records_table_name
from .rows import check_info, exists_error

if TYPE_CHECKING:
    from types import TracebackType

_MEMORY = ":memory:"


def _component(info: StoredFileInfo) -> str:
    return NULL_COMPONENT if info.component is None else info.component


def _sorted(by_component: dict[str, StoredFileInfo]) -> list[StoredFileInfo]:
    """Return a dataset's records in component order (SQL's ``ORDER BY component``)."""
    if len(by_component) == 1:
        return list(by_component.values())
    return [by_component[c] for c in sorted(by_component)]


class MemoryRecordsStore:
    """Datastore records in memory, with the interface of `~s3qbb.records.store.SqliteRecordsStore`.

    Parameters
    ----------
    datastore_name : `str`
        Name of the datastore whose records these are.
    table : `str`, optional
        Name of the records table (daf_butler's default), used in exports
        and in the file :meth:`flush_to_file` writes.

    Notes
    -----
    Every method is thread safe (one lock). A dataset is *live* (found by
    `get`, `has`, `export`) while it has records and is not in the trash;
    trashed datasets keep their records until :meth:`empty_trash`, and still
    count as recorded for `insert` and `insert_new`, as in the SQLite store.
    """

    def __init__(self, *, datastore_name: str, table: str = DEFAULT_RECORDS_TABLE) -> None:
        if not datastore_name or len(datastore_name) > 256:
            raise ConfigError(f"Datastore name {datastore_name!r} must have 1 to 256 characters.")
        self._table = check_records_table_name(table)
        self._datastore_name = datastore_name
        self._lock = threading.RLock()
        self._rows: dict[uuid.UUID, dict[str, StoredFileInfo]] = {}
        """Records of every dataset, trashed or not, by component."""
        self._trashed: dict[uuid.UUID, None] = {}
        """Datasets in the trash (an ordered set); every other dataset of `_rows` is live."""
        self._closed = False

    # --- identity and lifecycle ------------------------------------------------

    @property
    def datastore_name(self) -> str:
        """Name of the datastore whose records these are (`str`)."""
        return self._datastore_name

    @property
    def table(self) -> str:
        """Name of the records table (`str`)."""
        return self._table

    @property
    def in_memory(self) -> bool:
        """Whether the records live in memory (`bool`, always `True`)."""
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(datastore_name={self._datastore_name!r}, table={self._table!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Discard the records; calling it again does nothing, any other method raises afterwards."""
        with self._lock:
            self._closed = True
            self._rows = {}
            self._trashed = {}

    def _open(self) -> None:
        # Callers hold self._lock.
        if self._closed:
            raise RecordsStoreError(
                f"Records store {_MEMORY!r} of datastore {self._datastore_name!r} is closed; "
                "create a new store."
            )

    def _live(self, dataset_id: uuid.UUID) -> dict[str, StoredFileInfo] | None:
        # Callers hold self._lock.
        rows = self._rows.get(dataset_id)
        return None if rows is None or dataset_id in self._trashed else rows

    # --- writes ------------------------------------------------------------------

    def insert(self, infos: Iterable[StoredFileInfo], *, replace: bool = False) -> None:
        """Add records, all or none (see `SqliteRecordsStore.insert`).

        Parameters
        ----------
        infos : `~collections.abc.Iterable` [`StoredFileInfo`]
            Records to add; a dataset's records should all come in one call.
        replace : `bool`, optional
            If `True`, existing records of these datasets are replaced (and the
            datasets taken out of the trash).

        Raises
        ------
        RecordExistsError
            Raised, and nothing inserted, if ``replace`` is `False` and a
            dataset already has records, or if two records share a dataset ID
            and component.
        """
        infos = list(infos)
        if not infos:
            return
        by_id = self._group(infos)
        with self._lock:
            self._open()
            if replace:
                for dataset_id in by_id:
                    self._trashed.pop(dataset_id, None)
            else:
                existing = [i.hex for i in by_id if i in self._rows]
                if existing:
                    raise exists_error(self._datastore_name, existing, len(by_id) > 1)
            self._rows.update(by_id)

    def insert_new(self, infos: Iterable[StoredFileInfo]) -> set[uuid.UUID]:
        """Add the records of the datasets that have none; return the others (see `SqliteRecordsStore`).

        Parameters
        ----------
        infos : `~collections.abc.Iterable` [`StoredFileInfo`]
            Records to add; a dataset's records should all come in one call.

        Returns
        -------
        existing : `set` [`uuid.UUID`]
            Datasets that already had records (trashed ones included): none of
            their records given here was inserted.

        Raises
        ------
        RecordExistsError
            Raised, and nothing inserted, if two records share a dataset ID and component.
        """
        by_id = self._group(list(infos))
        with self._lock:
            self._open()
            existing = {i for i in by_id if i in self._rows}
            self._rows.update((i, rows) for i, rows in by_id.items() if i not in existing)
        return existing

    @staticmethod
    def _group(infos: Sequence[StoredFileInfo]) -> dict[uuid.UUID, dict[str, StoredFileInfo]]:
        """Group records by dataset and component, checked as the SQLite store's table checks them."""
        by_id: dict[uuid.UUID, dict[str, StoredFileInfo]] = {}
        for info in infos:
            component = check_info(info)
            rows = by_id.setdefault(info.dataset_id, {})
            if component in rows:
                raise RecordExistsError(
                    f"Dataset {info.dataset_id} has two records for component {component!r} in one insert; "
                    "give each component one record."
                )
            rows[component] = info
        return by_id

    def import_records(self, data: DatastoreRecordData) -> None:
        """Import exported records, all or none; importing the same records again does nothing.

        Parameters
        ----------
        data : `DatastoreRecordData`
            Records to import; only those of this store's table are used.

        Raises
        ------
        RecordExistsError
            Raised, and nothing imported, if a record conflicts with a stored
            one (same dataset ID and component, other values).
        RecordDataError
            Raised if a record is filed under another dataset's ID.
        """
        incoming: dict[uuid.UUID, dict[str, StoredFileInfo]] = {}
        for dataset_id, by_table in data.records.items():
            for info in by_table.get(self._table, ()):
                if info.dataset_id != dataset_id:
                    raise RecordDataError(
                        f"Record for dataset {info.dataset_id} (path {info.path!r}) is filed under "
                        f"dataset {dataset_id}; nothing was imported."
                    )
                component = check_info(info)
                rows = incoming.setdefault(info.dataset_id, {})
                if rows.setdefault(component, info) != info:
                    raise RecordExistsError(
                        f"Import data hold two different records for dataset {dataset_id}, component "
                        f"{component!r}; nothing was imported."
                    )
        if not incoming:
            return
        with self._lock:
            self._open()
            for dataset_id, rows in incoming.items():
                for component, stored in self._rows.get(dataset_id, {}).items():
                    new = rows.get(component)
                    if new is not None and new != stored:
                        raise RecordExistsError(
                            f"Dataset {dataset_id} already has a different record for component "
                            f"{component!r} in datastore {self._datastore_name!r} "
                            f"(stored path {stored.path!r}, imported {new.path!r}); nothing was imported."
                        )
            for dataset_id, rows in incoming.items():
                self._rows[dataset_id] = self._rows.get(dataset_id, {}) | rows
                self._trashed.pop(dataset_id, None)

    def delete(self, ids: Iterable[uuid.UUID]) -> int:
        """Forget datasets: remove their records and trash entries.

        Parameters
        ----------
        ids : `~collections.abc.Iterable` [`uuid.UUID`]
            Datasets to forget; unknown IDs are ignored.

        Returns
        -------
        count : `int`
            Number of datasets that had records (trashed ones included).
        """
        count = 0
        with self._lock:
            self._open()
            for dataset_id in dict.fromkeys(ids):
                if self._rows.pop(dataset_id, None) is not None:
                    count += 1
                self._trashed.pop(dataset_id, None)
        return count

    def move_to_trash(self, ids: Iterable[uuid.UUID]) -> int:
        """Mark datasets as removed; their records stay until :meth:`empty_trash`.

        Parameters
        ----------
        ids : `~collections.abc.Iterable` [`uuid.UUID`]
            Datasets to trash; unknown or already trashed IDs are ignored.

        Returns
        -------
        count : `int`
            Number of datasets moved to the trash.
        """
        with self._lock:
            self._open()
            found = [i for i in dict.fromkeys(ids) if self._live(i) is not None]
            self._trashed.update(dict.fromkeys(found))
        return len(found)

    def empty_trash(
        self, ids: Iterable[uuid.UUID] | None = None, *, dry_run: bool = False
    ) -> dict[uuid.UUID, list[StoredFileInfo]]:
        """Remove trashed datasets for good and return their records.

        Parameters
        ----------
        ids : `~collections.abc.Iterable` [`uuid.UUID`], optional
            Trashed datasets to remove (others are ignored); all if `None`.
        dry_run : `bool`, optional
            Only return the records that would be removed; remove nothing.

        Returns
        -------
        removed : `dict` [`uuid.UUID`, `list` [`StoredFileInfo`]]
            Records removed, by dataset, so the caller can delete the
            artifacts (some paths may still be used by other datasets).
        """
        with self._lock:
            self._open()
            found = (
                list(self._trashed) if ids is None else [i for i in dict.fromkeys(ids) if i in self._trashed]
            )
            removed = {i: list(self._rows[i].values()) for i in found if i in self._rows}
            if not dry_run:
                for dataset_id in found:
                    self._trashed.pop(dataset_id, None)
                    self._rows.pop(dataset_id, None)
        return removed

    # --- reads -------------------------------------------------------------------

    def get(self, dataset_id: uuid.UUID) -> list[StoredFileInfo]:
        """Return the records of one dataset, in component order; empty if none (or trashed).

        Parameters
        ----------
        dataset_id : `uuid.UUID`
            Dataset to look up.

        Returns
        -------
        infos : `list` [`StoredFileInfo`]
            Its records, empty if it has none (or is in the trash).
        """
        with self._lock:
            self._open()
            rows = self._live(dataset_id)
            return [] if rows is None else _sorted(rows)

    def get_many(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[StoredFileInfo]]:
        """Return the records of many datasets, in dataset ID order.

        Parameters
        ----------
        ids : `~collections.abc.Iterable` [`uuid.UUID`]
            Datasets to look up.

        Returns
        -------
        infos : `dict` [`uuid.UUID`, `list` [`StoredFileInfo`]]
            Records by dataset, only for datasets that have some.
        """
        with self._lock:
            self._open()
            found = {i: rows for i in dict.fromkeys(ids) if (rows := self._live(i)) is not None}
            return {i: _sorted(found[i]) for i in sorted(found, key=lambda i: i.hex)}

    def has(self, dataset_id: uuid.UUID) -> bool:
        """Return whether a dataset has records (and is not in the trash).

        Parameters
        ----------
        dataset_id : `uuid.UUID`
            Dataset to look up.

        Returns
        -------
        known : `bool`
            `True` if it has records.
        """
        with self._lock:
            self._open()
            return dataset_id in self._rows and dataset_id not in self._trashed

    def dataset_ids(self) -> set[uuid.UUID]:
        """Return the IDs of all datasets with records, trash excluded.

        Returns
        -------
        ids : `set` [`uuid.UUID`]
            Dataset IDs.
        """
        with self._lock:
            self._open()
            return self._rows.keys() - self._trashed.keys()

    def trashed_ids(self) -> set[uuid.UUID]:
        """Return the IDs of datasets in the trash.

        Returns
        -------
        ids : `set` [`uuid.UUID`]
            Trashed dataset IDs.
        """
        with self._lock:
            self._open()
            return set(self._trashed)

    def export(self, ids: Iterable[uuid.UUID] | None = None) -> DatastoreRecordData:
        """Export records, e.g. for provenance or another store's :meth:`import_records`.

        Parameters
        ----------
        ids : `~collections.abc.Iterable` [`uuid.UUID`], optional
            Datasets to export; all (trash excluded) if `None`.

        Returns
        -------
        data : `DatastoreRecordData`
            Records of the datasets that have some, under this store's table.
        """
        if ids is None:
            with self._lock:
                self._open()
                ids = [i for i in self._rows if i not in self._trashed]
        found = self.get_many(ids)
        return DatastoreRecordData(records={i: {self._table: infos} for i, infos in found.items()})

    # --- files -------------------------------------------------------------------

    def flush_to_file(self, path: str | os.PathLike[str]) -> Path:
        """Write every record, trash included, to a single SQLite file.

        The file is the one `SqliteRecordsStore.flush_to_file` of an
        in-memory store holding the same records writes (same schema, page
        size and journal mode), replaced atomically if it exists.

        Parameters
        ----------
        path : `str` or `os.PathLike`
            Destination.

        Returns
        -------
        path : `pathlib.Path`
            The file written, readable by any SQLite client.
        """
        from .store import SqliteRecordsStore

        with self._lock:
            self._open()
            rows = [info for by_component in self._rows.values() for info in by_component.values()]
            trashed = list(self._trashed)
        with SqliteRecordsStore(datastore_name=self._datastore_name, table=self._table) as staging:
            staging.insert(rows)
            staging.move_to_trash(trashed)
            return staging.flush_to_file(path)
