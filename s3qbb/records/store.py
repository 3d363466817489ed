"""SQLite-backed store of datastore records, in memory or in a single file.

A store holds the records of one datastore (its name goes into
``dataset_location``). Nothing is opened until first use, so constructing a
store costs microseconds; a quantum-backed butler builds one per quantum. At the
end of a quantum, :meth:`SqliteRecordsStore.flush_to_file` writes the whole
database to one SQLite file that daf_butler's tools can read.

The store runs on the standard library's `sqlite3` (statements in
`s3qbb.records.sql`): it is on the path of every batch job, where importing
SQLAlchemy would cost more CPU than the rest of the job's start-up.
"""

from __future__ import annotations

__all__ = ["SqliteRecordsStore"]

import os
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from ..core.records import NULL_COMPONENT, DatastoreRecordData, StoredFileInfo
from ..errors import ConfigError, RecordDataError, RecordExistsError
from .database import RecordsDatabase
from .names import DEFAULT_RECORDS_TABLE
from .rows import check_info, exists_error
from .sql import RecordsSQL, batches, init_schema, reading, writing


def _unique(ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(ids))


def _row_key(info: StoredFileInfo) -> tuple[uuid.UUID, str]:
    return (info.dataset_id, NULL_COMPONENT if info.component is None else info.component)


def _row(info: StoredFileInfo) -> tuple[Any, ...]:
    """Return the row of the records table for a record (in `RecordsSQL.COLUMNS` order), checked."""
    component = check_info(info)
    return (info.dataset_id.hex, info.path, info.formatter, info.storage_class, component, info.checksum,
            info.file_size)  # fmt: skip


def _info(row: Sequence[Any], ids: dict[str, uuid.UUID]) -> StoredFileInfo:
    """Make a record from a row; ``ids`` maps hex IDs to UUIDs and is filled as needed."""
    id_hex, path, formatter, storage_class, component, checksum, file_size = row
    dataset_id = ids.get(id_hex)
    if dataset_id is None:
        dataset_id = ids[id_hex] = uuid.UUID(id_hex)
    return StoredFileInfo(
        dataset_id,
        path,
        formatter,
        storage_class,
        None if component == NULL_COMPONENT else component,
        checksum,
        -1 if file_size is None else file_size,
    )


class SqliteRecordsStore(RecordsDatabase):
    """Datastore records in SQLite (in memory or in a file).

    Parameters
    ----------
    filename : `str`, optional
        SQLite file, created if missing; ``":memory:"`` (default) keeps
        everything in memory until :meth:`flush_to_file`.
    datastore_name : `str`
        Name of the datastore whose records these are.
    table : `str`, optional
        Name of the records table (daf_butler's default).
    busy_timeout : `float`, optional
        Seconds to wait for another process's lock on a file before failing.

    Notes
    -----
    Every method is thread safe: calls are serialized by a lock (the
    in-memory database is a single connection). Records of datasets moved to
    the trash are invisible to lookups until :meth:`empty_trash` removes them.
    """

    def __init__(
        self,
        filename: str | os.PathLike[str] = ":memory:",
        *,
        datastore_name: str,
        table: str = DEFAULT_RECORDS_TABLE,
        busy_timeout: float = 60.0,
    ) -> None:
        if not datastore_name or len(datastore_name) > 256:
            raise ConfigError(f"Datastore name {datastore_name!r} must have 1 to 256 characters.")
        super().__init__(filename, busy_timeout=busy_timeout, owner=f"datastore {datastore_name!r}")
        self._sql = RecordsSQL(table, datastore_name)
        self._datastore_name = datastore_name
        self._table = table

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        init_schema(conn, self._table, self._datastore_name, self._filename)

    # --- identity ----------------------------------------------------------

    @property
    def datastore_name(self) -> str:
        """Name of the datastore whose records these are (`str`)."""
        return self._datastore_name

    @property
    def table(self) -> str:
        """Name of the records table (`str`)."""
        return self._table

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._filename!r}, datastore_name={self._datastore_name!r}, "
            f"table={self._table!r})"
        )

    def _exists_error(self, existing: Sequence[str], several: bool) -> RecordExistsError:
        return exists_error(self._datastore_name, existing, several)

    # --- writes --------------------------------------------------------------

    def insert(self, infos: Iterable[StoredFileInfo], *, replace: bool = False) -> None:
        """Add records, all or none.

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
        if len(infos) == 1 and not replace:
            self._insert_one(infos[0])
            return
        rows = [_row(info) for info in infos]
        if len({(row[0], row[4]) for row in rows}) != len(rows):
            seen: set[tuple[str, str]] = set()
            for info, row in zip(infos, rows, strict=True):
                if (row[0], row[4]) in seen:
                    raise RecordExistsError(
                        f"Dataset {info.dataset_id} has two records for component {row[4]!r} in one insert; "
                        "give each component one record."
                    )
                seen.add((row[0], row[4]))
        ids = _unique(info.dataset_id for info in infos)
        sql = self._sql
        with self._lock:
            conn = self._connection()
            with self._translate("insert records"), writing(conn):
                if replace:
                    sql.execute_in(conn, sql.delete_records, ids, named=False)
                    sql.execute_in(conn, sql.delete_trash, ids, named=True)
                else:
                    existing = sql.query_ids(conn, sql.existing_ids, ids, named=False)
                    if existing:
                        raise self._exists_error(existing, len(ids) > 1)
                conn.executemany(sql.insert, rows)
                self._locate(conn, ids)

    def insert_new(self, infos: Iterable[StoredFileInfo]) -> set[uuid.UUID]:
        """Add the records of the datasets that have none, in one transaction; return the others.

        What a bulk put needs: each dataset is recorded whole or not at all,
        and a dataset recorded meanwhile (by another writer) does not keep the
        other datasets from being recorded.

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
        by_id: dict[uuid.UUID, list[tuple[Any, ...]]] = {}
        keys: set[tuple[uuid.UUID, str]] = set()
        for info in infos:
            row = _row(info)
            key = (info.dataset_id, row[4])
            if key in keys:
                raise RecordExistsError(
                    f"Dataset {info.dataset_id} has two records for component {row[4]!r} in one insert; "
                    "give each component one record."
                )
            keys.add(key)
            by_id.setdefault(info.dataset_id, []).append(row)
        if not by_id:
            return set()
        ids = list(by_id)
        sql = self._sql
        with self._lock:
            conn = self._connection()
            with self._translate("insert records"), writing(conn):
                by_hex = {i.hex: i for i in ids}
                existing = {by_hex[i] for i in sql.query_ids(conn, sql.existing_ids, ids, named=False)}
                new = [i for i in ids if i not in existing]
                conn.executemany(sql.insert, [row for i in new for row in by_id[i]])
                self._locate(conn, new)
        return existing

    def _insert_one(self, info: StoredFileInfo) -> None:
        """Insert the one record of a dataset that has none (a put): `insert` with fewer steps.

        The same statements in the same transaction as the general path (``BEGIN
        IMMEDIATE``, the existence check of trashed and live rows, the row, the
        location, ``COMMIT``; ``ROLLBACK`` on any error), on the store's one cursor,
        the ID converted to hex once.
        """
        id_hex = info.dataset_id.hex
        component = check_info(info)
        row = (id_hex, info.path, info.formatter, info.storage_class, component, info.checksum,
               info.file_size)  # fmt: skip
        sql = self._sql
        with self._lock:
            cur = self._cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    if cur.execute(sql.exists, (id_hex,)).fetchall():
                        raise self._exists_error([id_hex], False)
                    cur.execute(sql.insert, row)
                    cur.execute(sql.locate, (self._datastore_name, id_hex))
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
            except sqlite3.Error as err:
                raise self._error("insert records", err) from err

    def _locate(self, conn: sqlite3.Connection, ids: Sequence[uuid.UUID]) -> None:
        conn.executemany(self._sql.locate, [(self._datastore_name, i.hex) for i in ids])

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
        incoming: dict[tuple[uuid.UUID, str], StoredFileInfo] = {}
        for dataset_id, by_table in data.records.items():
            for info in by_table.get(self._table, ()):
                if info.dataset_id != dataset_id:
                    raise RecordDataError(
                        f"Record for dataset {info.dataset_id} (path {info.path!r}) is filed under "
                        f"dataset {dataset_id}; nothing was imported."
                    )
                key = (info.dataset_id, check_info(info))
                if incoming.setdefault(key, info) != info:
                    raise RecordExistsError(
                        f"Import data hold two different records for dataset {dataset_id}, component "
                        f"{key[1]!r}; nothing was imported."
                    )
        if not incoming:
            return
        ids = _unique(key[0] for key in incoming)
        by_hex = {i.hex: i for i in ids}
        sql = self._sql
        with self._lock:
            conn = self._connection()
            with self._translate("import records"), writing(conn):
                for batch in batches(ids):
                    for row in conn.execute(sql.select_any(len(batch)), [i.hex for i in batch]):
                        stored = _info(row, by_hex)
                        new = incoming.pop(_row_key(stored), None)
                        if new is not None and new != stored:
                            raise RecordExistsError(
                                f"Dataset {stored.dataset_id} already has a different record for component "
                                f"{_row_key(stored)[1]!r} in datastore {self._datastore_name!r} "
                                f"(stored path {stored.path!r}, imported {new.path!r}); nothing was imported."
                            )
                if incoming:
                    conn.executemany(sql.insert, [_row(info) for info in incoming.values()])
                sql.execute_in(conn, sql.delete_trash, ids, named=True)
                self._locate(conn, ids)

    def delete(self, ids: Iterable[uuid.UUID]) -> int:
        """Forget datasets: remove their records, location and trash entries.

        Parameters
        ----------
        ids : `~collections.abc.Iterable` [`uuid.UUID`]
            Datasets to forget; unknown IDs are ignored.

        Returns
        -------
        count : `int`
            Number of datasets that had records (trashed ones included).
        """
        unique = _unique(ids)
        if not unique:
            return 0
        sql = self._sql
        with self._lock:
            conn = self._connection()
            with self._translate("delete records"), writing(conn):
                count = len(sql.query_ids(conn, sql.existing_ids, unique, named=False))
                sql.execute_in(conn, sql.delete_records, unique, named=False)
                sql.execute_in(conn, sql.delete_location, unique, named=True)
                sql.execute_in(conn, sql.delete_trash, unique, named=True)
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
        unique = _unique(ids)
        sql = self._sql
        with self._lock:
            conn = self._connection()
            with self._translate("move datasets to the trash"), writing(conn):
                found = sql.query_ids(conn, sql.located_ids, unique, named=True)
                conn.executemany(sql.trash, [(i, self._datastore_name) for i in found])
                sql.execute_in(conn, sql.delete_location, [uuid.UUID(i) for i in found], named=True)
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
        removed: dict[uuid.UUID, list[StoredFileInfo]] = {}
        sql = self._sql
        with self._lock:
            conn = self._connection()
            with self._translate("empty the trash"), writing(conn):
                if ids is None:
                    found = [row[0] for row in conn.execute(sql.trashed_ids, (self._datastore_name,))]
                else:
                    found = sql.query_ids(conn, sql.trashed_in, _unique(ids), named=True)
                by_hex = {i: uuid.UUID(i) for i in found}
                wanted = list(by_hex.values())
                for batch in batches(wanted):
                    for row in conn.execute(sql.select_any(len(batch)), [i.hex for i in batch]):
                        info = _info(row, by_hex)
                        removed.setdefault(info.dataset_id, []).append(info)
                if not dry_run:
                    sql.execute_in(conn, sql.delete_records, wanted, named=False)
                    sql.execute_in(conn, sql.delete_trash, wanted, named=True)
        return removed

    # --- reads ---------------------------------------------------------------

    def get(self, dataset_id: uuid.UUID) -> list[StoredFileInfo]:
        """Return the records of one dataset.

        Parameters
        ----------
        dataset_id : `uuid.UUID`
            Dataset to look up.

        Returns
        -------
        infos : `list` [`StoredFileInfo`]
            Its records, empty if it has none (or is in the trash).
        """
        id_hex = dataset_id.hex
        with self._lock:
            cur = self._cursor()
            try:
                rows = cur.execute(self._sql.select_one, (self._datastore_name, id_hex)).fetchall()
            except sqlite3.Error as err:
                raise self._error("read records", err) from err
        by_hex = {id_hex: dataset_id}
        return [_info(row, by_hex) for row in rows]

    def get_many(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[StoredFileInfo]]:
        """Return the records of many datasets, querying in batches.

        Parameters
        ----------
        ids : `~collections.abc.Iterable` [`uuid.UUID`]
            Datasets to look up.

        Returns
        -------
        infos : `dict` [`uuid.UUID`, `list` [`StoredFileInfo`]]
            Records by dataset, only for datasets that have some.
        """
        unique = _unique(ids)
        result: dict[uuid.UUID, list[StoredFileInfo]] = {}
        if not unique:
            return result
        rows: list[Any] = []
        with self._lock:
            conn = self._connection()
            with self._translate("read records"), reading(conn):
                for batch in batches(unique):
                    params = (self._datastore_name, *(i.hex for i in batch))
                    rows.extend(conn.execute(self._sql.select_many(len(batch)), params))
        by_hex = {i.hex: i for i in unique}
        for row in rows:
            info = _info(row, by_hex)
            result.setdefault(info.dataset_id, []).append(info)
        return result

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
            cur = self._cursor()
            try:
                return bool(cur.execute(self._sql.has, (self._datastore_name, dataset_id.hex)).fetchall())
            except sqlite3.Error as err:
                raise self._error("read records", err) from err

    def dataset_ids(self) -> set[uuid.UUID]:
        """Return the IDs of all datasets with records, trash excluded.

        Returns
        -------
        ids : `set` [`uuid.UUID`]
            Dataset IDs, counted afresh on every call.
        """
        with self._lock:
            conn = self._connection()
            with self._translate("read records"):
                found = conn.execute(self._sql.live_ids, (self._datastore_name,)).fetchall()
        return {uuid.UUID(row[0]) for row in found}

    def trashed_ids(self) -> set[uuid.UUID]:
        """Return the IDs of datasets in the trash.

        Returns
        -------
        ids : `set` [`uuid.UUID`]
            Trashed dataset IDs.
        """
        with self._lock:
            conn = self._connection()
            with self._translate("read the trash"):
                found = conn.execute(self._sql.trashed_ids, (self._datastore_name,)).fetchall()
        return {uuid.UUID(row[0]) for row in found}

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
        if ids is not None:
            found: Iterable[tuple[uuid.UUID, list[StoredFileInfo]]] = self.get_many(ids).items()
        else:
            by_id: dict[uuid.UUID, list[StoredFileInfo]] = {}
            with self._lock:
                conn = self._connection()
                with self._translate("export records"):
                    rows = conn.execute(self._sql.select_all, (self._datastore_name,)).fetchall()
            by_hex: dict[str, uuid.UUID] = {}
            for row in rows:
                info = _info(row, by_hex)
                by_id.setdefault(info.dataset_id, []).append(info)
            found = by_id.items()
        return DatastoreRecordData(records={i: {self._table: infos} for i, infos in found})
