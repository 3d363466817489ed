"""SQLite-backed store of datastore records, in memory or in a single file.

A store holds the records of one datastore (its name goes into
``dataset_location``). Nothing is opened until first use, so constructing a
store costs microseconds; a quantum-backed butler builds one per quantum. At the
end of a quantum, :meth:`SqliteRecordsStore.flush_to_file` writes the whole
database to one SQLite file that daf_butler's tools can read.
"""

from __future__ import annotations

__all__ = ["SqliteRecordsStore"]

import contextlib
import os
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.records import NULL_COMPONENT, DatastoreRecordData, StoredFileInfo
from ..errors import (
    ConfigError,
    RecordDataError,
    RecordExistsError,
    RecordsStoreError,
    TransientStorageError,
)
from .fast import FastStatements
from .names import (
    DEFAULT_RECORDS_TABLE,
    META_TABLE,
    OPAQUE_META_TABLE,
    RECORDS_SCHEMA_VERSION,
    WRITE_OPTION,
    check_records_table_name,
)

if TYPE_CHECKING:
    from types import TracebackType

    import sqlalchemy as sa

    from .schema import RecordsQueries

# SQLAlchemy (~0.3 s to import) is loaded when a store is first used, not when s3qbb is imported:
# a batch job builds its butler before it moves any data.

_BATCH = 500  # IN-list size; far below SQLite's bound-parameter limit.
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def _batches(ids: Sequence[uuid.UUID]) -> Iterator[Sequence[uuid.UUID]]:
    for start in range(0, len(ids), _BATCH):
        yield ids[start : start + _BATCH]


def _unique(ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(ids))


def _row_key(info: StoredFileInfo) -> tuple[uuid.UUID, str]:
    return (info.dataset_id, NULL_COMPONENT if info.component is None else info.component)


class _Open:
    """Engine of an open store (built on first use) and its statements."""

    def __init__(self, engine: sa.Engine, q: RecordsQueries, fast: FastStatements) -> None:
        self.engine = engine
        # Same pool and listeners; the option tells the begin listener to take the write lock.
        self.write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self.q = q
        self.fast = fast


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


class SqliteRecordsStore:
    """Datastore records in SQLite (in memory or in a file), through SQLAlchemy Core.

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
        check_records_table_name(table)
        self._filename = os.fspath(filename)
        self._datastore_name = datastore_name
        self._table = table
        self._busy_timeout_ms = max(0, int(busy_timeout * 1000))
        self._lock = threading.RLock()
        self._open: _Open | None = None
        self._closed = False

    # --- lifecycle -----------------------------------------------------------

    @property
    def in_memory(self) -> bool:
        """Whether the database lives in memory (`bool`)."""
        return self._filename == ":memory:"

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

    def __enter__(self) -> SqliteRecordsStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database; the records of an in-memory store are discarded.

        Calling it again does nothing; any other method raises
        `RecordsStoreError` afterwards.
        """
        with self._lock:
            self._closed = True
            if self._open is not None:
                self._open.engine.dispose()
                self._open = None

    def _state(self) -> _Open:
        # Callers hold self._lock.
        if self._open is not None:
            return self._open
        if self._closed:
            raise RecordsStoreError(
                f"Records store {self._filename!r} of datastore {self._datastore_name!r} is closed; "
                "create a new store."
            )
        from .schema import make_engine, make_queries

        engine = make_engine(self._filename, busy_timeout_ms=self._busy_timeout_ms)
        try:
            with self._translate("open the database"):
                fast = FastStatements(engine, self._table, self._datastore_name)
            state = _Open(engine, make_queries(self._table, self._datastore_name), fast)
            with self._translate("create the schema"), state.write_engine.begin() as conn:
                self._init_schema(conn)
        except BaseException:
            engine.dispose()
            raise
        self._open = state
        return state

    def _init_schema(self, conn: sa.Connection) -> None:
        # DDL rendered once per table name (IF NOT EXISTS, so reopening a file is harmless); the
        # meta statements are plain SQL for the same reason: opening a store should cost ~1 ms.
        from .schema import create_statements

        for statement in create_statements(self._table):
            conn.exec_driver_sql(statement)
        found: dict[str, str] = {
            key: value for key, value in conn.exec_driver_sql(f'SELECT "key", value FROM {META_TABLE}')
        }
        version = found.get("records_schema_version")
        if version is not None and version != RECORDS_SCHEMA_VERSION:
            raise RecordsStoreError(
                f"Records database {self._filename!r} has schema version {version}, this s3qbb "
                f"understands version {RECORDS_SCHEMA_VERSION}; use a matching s3qbb version."
            )
        name = found.get("datastore_name")
        if name is not None and name != self._datastore_name:
            raise ConfigError(
                f"Records database {self._filename!r} belongs to datastore {name!r}, not "
                f"{self._datastore_name!r}; use another file or the matching datastore name."
            )
        wanted = {"records_schema_version": RECORDS_SCHEMA_VERSION, "datastore_name": self._datastore_name}
        missing = [(k, v) for k, v in wanted.items() if k not in found]
        if missing:
            conn.exec_driver_sql(f'INSERT INTO {META_TABLE} ("key", value) VALUES (?, ?)', missing)
        conn.exec_driver_sql(
            f"INSERT OR IGNORE INTO {OPAQUE_META_TABLE} (table_name) VALUES (?)", (self._table,)
        )

    @contextlib.contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        import sqlalchemy as sa

        try:
            yield
        except sa.exc.IntegrityError as err:
            raise RecordExistsError(
                f"Cannot {action} in records store {self._filename!r}: a record with the same dataset ID "
                "and component already exists."
            ) from err
        except (sa.exc.DBAPIError, sqlite3.Error) as err:
            cause = err.orig if isinstance(err, sa.exc.DBAPIError) else err
            code = getattr(cause, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
                raise TransientStorageError(
                    f"Cannot {action} in records store {self._filename!r}: the database stayed locked "
                    f"for {self._busy_timeout_ms} ms; retry, or stop the other process using it."
                ) from err
            raise RecordsStoreError(
                f"Cannot {action} in records store {self._filename!r}: {cause}; check that the file "
                "is a writable SQLite database."
            ) from err

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
        rows = [info.to_record() for info in infos]
        keys = {(row["dataset_id"], row["component"]) for row in rows}
        if len(keys) != len(rows):
            seen: set[tuple[uuid.UUID, str]] = set()
            for dataset_id, component in ((r["dataset_id"], r["component"]) for r in rows):
                if (dataset_id, component) in seen:
                    raise RecordExistsError(
                        f"Dataset {dataset_id} has two records for component {component!r} in one insert; "
                        "give each component one record."
                    )
                seen.add((dataset_id, component))
        ids = _unique(info.dataset_id for info in infos)
        if not replace and len(ids) == 1:
            tuples = [
                (r["dataset_id"].hex, r["path"], r["formatter"], r["storage_class"], r["component"],
                 r["checksum"], r["file_size"])
                for r in rows
            ]  # fmt: skip
            with self._lock:
                state = self._state()
                with self._translate("insert records"):
                    inserted = state.fast.insert_one_dataset(ids[0], tuples)
            if not inserted:
                raise RecordExistsError(
                    f"Datastore {self._datastore_name!r} already has records for dataset(s) {ids[0]}; "
                    "nothing was inserted."
                )
            return
        with self._lock:
            state = self._state()
            with self._translate("insert records"), state.write_engine.begin() as conn:
                if replace:
                    for batch in _batches(ids):
                        conn.execute(state.q.delete_records, {"ids": batch})
                        conn.execute(state.q.delete_trash, {"ids": batch})
                else:
                    existing = [
                        dataset_id
                        for batch in _batches(ids)
                        for dataset_id in conn.execute(state.q.existing_ids, {"ids": batch}).scalars()
                    ]
                    if existing:
                        shown = ", ".join(str(i) for i in existing[:5])
                        more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
                        raise RecordExistsError(
                            f"Datastore {self._datastore_name!r} already has records for dataset(s) "
                            f"{shown}{more}; nothing was inserted. Pass replace=True to overwrite them."
                        )
                conn.execute(state.q.insert_records, rows)
                self._locate(conn, state, ids)

    def _locate(self, conn: sa.Connection, state: _Open, ids: Sequence[uuid.UUID]) -> None:
        name = self._datastore_name
        conn.execute(state.q.ensure_location, [{"datastore_name": name, "dataset_id": i} for i in ids])

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
                key = _row_key(info)
                if incoming.setdefault(key, info) != info:
                    raise RecordExistsError(
                        f"Import data hold two different records for dataset {dataset_id}, component "
                        f"{key[1]!r}; nothing was imported."
                    )
        if not incoming:
            return
        ids = _unique(key[0] for key in incoming)
        by_hex = {i.hex: i for i in ids}
        with self._lock:
            state = self._state()
            with self._translate("import records"), state.write_engine.begin() as conn:
                for batch in _batches(ids):
                    for row in conn.execute(state.q.select_any, {"ids": batch}).all():
                        stored = _info(row, by_hex)
                        new = incoming.pop(_row_key(stored), None)
                        if new is not None and new != stored:
                            raise RecordExistsError(
                                f"Dataset {stored.dataset_id} already has a different record for component "
                                f"{_row_key(stored)[1]!r} in datastore {self._datastore_name!r} "
                                f"(stored path {stored.path!r}, imported {new.path!r}); nothing was imported."
                            )
                if incoming:
                    conn.execute(state.q.insert_records, [info.to_record() for info in incoming.values()])
                for batch in _batches(ids):
                    conn.execute(state.q.delete_trash, {"ids": batch})
                self._locate(conn, state, ids)

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
        count = 0
        with self._lock:
            state = self._state()
            with self._translate("delete records"), state.write_engine.begin() as conn:
                for batch in _batches(unique):
                    count += len(conn.execute(state.q.existing_ids, {"ids": batch}).all())
                    conn.execute(state.q.delete_records, {"ids": batch})
                    conn.execute(state.q.delete_location, {"ids": batch})
                    conn.execute(state.q.delete_trash, {"ids": batch})
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
        count = 0
        with self._lock:
            state = self._state()
            with self._translate("move datasets to the trash"), state.write_engine.begin() as conn:
                for batch in _batches(unique):
                    found = list(conn.execute(state.q.located_ids, {"ids": batch}).scalars())
                    if found:
                        rows = [{"datastore_name": self._datastore_name, "dataset_id": i} for i in found]
                        conn.execute(state.q.ensure_trash, rows)
                        conn.execute(state.q.delete_location, {"ids": found})
                        count += len(found)
        return count

    def empty_trash(self, ids: Iterable[uuid.UUID] | None = None) -> dict[uuid.UUID, list[StoredFileInfo]]:
        """Remove trashed datasets for good and return their records.

        Parameters
        ----------
        ids : `~collections.abc.Iterable` [`uuid.UUID`], optional
            Trashed datasets to remove (others are ignored); all if `None`.

        Returns
        -------
        removed : `dict` [`uuid.UUID`, `list` [`StoredFileInfo`]]
            Records removed, by dataset, so the caller can delete the
            artifacts (some paths may still be used by other datasets).
        """
        removed: dict[uuid.UUID, list[StoredFileInfo]] = {}
        with self._lock:
            state = self._state()
            with self._translate("empty the trash"), state.write_engine.begin() as conn:
                if ids is None:
                    wanted = list(conn.execute(state.q.trashed_ids).scalars())
                else:
                    wanted = [
                        i
                        for batch in _batches(_unique(ids))
                        for i in conn.execute(state.q.trashed_in, {"ids": batch}).scalars()
                    ]
                by_hex = {i.hex: i for i in wanted}
                for batch in _batches(wanted):
                    for row in conn.execute(state.q.select_any, {"ids": batch}).all():
                        info = _info(row, by_hex)
                        removed.setdefault(info.dataset_id, []).append(info)
                    conn.execute(state.q.delete_records, {"ids": batch})
                    conn.execute(state.q.delete_trash, {"ids": batch})
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
        with self._lock:
            state = self._state()
            with self._translate("read records"):
                rows = state.fast.get(dataset_id)
        by_hex = {dataset_id.hex: dataset_id}
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
        rows: list[sa.Row[Any]] = []
        with self._lock:
            state = self._state()
            with self._translate("read records"), state.engine.connect() as conn:
                for batch in _batches(unique):
                    rows.extend(conn.execute(state.q.select_many, {"ids": batch}).all())
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
            state = self._state()
            with self._translate("read records"):
                return state.fast.has(dataset_id)

    def dataset_ids(self) -> set[uuid.UUID]:
        """Return the IDs of all datasets with records, trash excluded.

        Returns
        -------
        ids : `set` [`uuid.UUID`]
            Dataset IDs, counted afresh on every call.
        """
        with self._lock:
            state = self._state()
            with self._translate("read records"), state.engine.connect() as conn:
                return set(conn.execute(state.q.live_ids).scalars())

    def trashed_ids(self) -> set[uuid.UUID]:
        """Return the IDs of datasets in the trash.

        Returns
        -------
        ids : `set` [`uuid.UUID`]
            Trashed dataset IDs.
        """
        with self._lock:
            state = self._state()
            with self._translate("read the trash"), state.engine.connect() as conn:
                return set(conn.execute(state.q.trashed_ids).scalars())

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
                state = self._state()
                with self._translate("export records"), state.engine.connect() as conn:
                    rows = conn.execute(state.q.select_all).all()
            by_hex: dict[str, uuid.UUID] = {}
            for row in rows:
                info = _info(row, by_hex)
                by_id.setdefault(info.dataset_id, []).append(info)
            found = by_id.items()
        return DatastoreRecordData(records={i: {self._table: infos} for i, infos in found})

    # --- files ---------------------------------------------------------------

    def flush_to_file(self, path: str | os.PathLike[str]) -> Path:
        """Write the whole database to a single SQLite file.

        Parameters
        ----------
        path : `str` or `os.PathLike`
            Destination, replaced atomically if it exists. For a file store,
            its own file is returned as is: committed data are always in it
            (rollback journal, not WAL).

        Returns
        -------
        path : `pathlib.Path`
            The file written, readable by any SQLite client.
        """
        target = Path(path)
        with self._lock:
            state = self._state()
            if not self.in_memory and target.exists() and target.samefile(self._filename):
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            try:
                with self._translate("copy the database"), state.engine.connect() as conn:
                    source = conn.connection.driver_connection
                    assert isinstance(source, sqlite3.Connection)
                    dest = sqlite3.connect(tmp)
                    try:
                        # Online backup API: a consistent copy, page by page, whatever the journal mode.
                        source.backup(dest)
                    finally:
                        dest.close()
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        return target
