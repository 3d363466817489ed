"""The SQL of a records database on the standard library's `sqlite3`: DDL, statements, transactions.

A batch job opens one records store per quantum, so this module must not
import SQLAlchemy (about 0.15 s of CPU, more than the rest of the job's own
start-up): the statements are plain SQLite text. The DDL is the text
SQLAlchemy renders for `s3qbb.records.schema.make_schema` (a test compares
the two) and therefore daf_butler's (a golden copy and daf_butler itself are
compared with it too).

Connections follow the recipe of `s3qbb.sqlite_engine` for the registry:
`sqlite3`'s own implicit transactions are off (``isolation_level=None``),
every connection has foreign keys on and a busy timeout, and writers begin
with ``BEGIN IMMEDIATE`` so they take the write lock up front instead of
failing with ``SQLITE_BUSY`` when a deferred transaction upgrades to writing.
"""

from __future__ import annotations

__all__ = [
    "BATCH",
    "MEMORY_PAGE_SIZE",
    "RecordsSQL",
    "batches",
    "connect",
    "create_statements",
    "init_schema",
    "reading",
    "writing",
]

import contextlib
import functools
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence

from ..errors import ConfigError, RecordsStoreError
from .names import (
    DATASET_LOCATION_TABLE,
    DATASET_LOCATION_TRASH_TABLE,
    META_TABLE,
    OPAQUE_META_TABLE,
    RECORDS_SCHEMA_VERSION,
    check_records_table_name,
)

BATCH = 500
"""Most IDs bound to one statement (far below SQLite's bound-parameter limit)."""

MEMORY_PAGE_SIZE = 1024
"""Page size of an in-memory records database (SQLite's smallest; files keep SQLite's default)."""

_LOCATION = DATASET_LOCATION_TABLE
_TRASH = DATASET_LOCATION_TRASH_TABLE


@functools.lru_cache(maxsize=16)
def create_statements(records_table: str) -> tuple[str, ...]:
    """Return the SQLite DDL creating a records database, each statement ``IF NOT EXISTS``.

    Parameters
    ----------
    records_table : `str`
        Name of the records table (checked with
        `~s3qbb.records.names.check_records_table_name`).

    Returns
    -------
    statements : `tuple` [`str`, ...]
        ``CREATE TABLE`` and ``CREATE INDEX`` statements, in the order and
        text SQLAlchemy renders for `s3qbb.records.schema.make_schema`.
    """
    t = check_records_table_name(records_table)
    return (
        f"CREATE TABLE IF NOT EXISTS {_LOCATION} (\n\tdatastore_name TEXT NOT NULL, \n\t"
        "dataset_id CHAR(32) NOT NULL, \n\tPRIMARY KEY (datastore_name, dataset_id)\n)",
        f"CREATE TABLE IF NOT EXISTS {_TRASH} (\n\tdataset_id CHAR(32) NOT NULL, \n\t"
        "datastore_name TEXT NOT NULL, \n\tPRIMARY KEY (dataset_id, datastore_name)\n)",
        f"CREATE TABLE IF NOT EXISTS {t} (\n\tdataset_id CHAR(32) NOT NULL, \n\tpath TEXT NOT NULL, \n\t"
        "formatter TEXT NOT NULL, \n\tstorage_class TEXT NOT NULL, \n\tcomponent VARCHAR(32) NOT NULL, \n\t"
        "checksum TEXT, \n\tfile_size BIGINT, \n\tPRIMARY KEY (dataset_id, component), \n\t"
        f'CONSTRAINT {t}_len_component CHECK (length("component")<=32 AND length("component")>=1)\n)',
        f"CREATE TABLE IF NOT EXISTS {OPAQUE_META_TABLE} (\n\ttable_name TEXT NOT NULL, \n\t"
        "PRIMARY KEY (table_name)\n)",
        f'CREATE TABLE IF NOT EXISTS {META_TABLE} (\n\t"key" VARCHAR(64) NOT NULL, \n\t'
        'value TEXT NOT NULL, \n\tPRIMARY KEY ("key")\n)',
        f"CREATE INDEX IF NOT EXISTS {t}_idx_path ON {t} (path)",
    )


def connect(filename: str, *, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open a records database with s3qbb's connection settings.

    Parameters
    ----------
    filename : `str`
        SQLite file (created if missing), or ``":memory:"``.
    busy_timeout_ms : `int`
        Milliseconds to wait for another process's lock.

    Returns
    -------
    conn : `sqlite3.Connection`
        A connection in autocommit mode (transactions are begun explicitly
        by `writing` and `reading`), usable from any thread: the store's
        lock serializes its use.
    """
    conn = sqlite3.connect(filename, isolation_level=None, check_same_thread=False)
    try:
        if filename == ":memory:":
            # Small pages: a put's transaction copies every page it changes (5 b-trees) into the
            # rollback journal, 1 KiB each instead of 4 KiB (~10% of a put's records instructions).
            # A file flushed from this store keeps them; any SQLite reader reads any page size.
            conn.execute(f"PRAGMA page_size={MEMORY_PAGE_SIZE:d}")
        # SQLite enforces declared foreign keys only when asked, per connection.
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
        if filename != ":memory:":
            # Rollback journal, deleted at commit: committed data always lives in the one database
            # file, which is uploaded as a single object. WAL would keep committed pages in a -wal file.
            conn.execute("PRAGMA journal_mode=DELETE").fetchall()
    except BaseException:
        conn.close()
        raise
    return conn


def init_schema(conn: sqlite3.Connection, table: str, datastore_name: str, filename: str) -> None:
    """Create the schema if missing, and check that an existing database is one the store may use.

    Parameters
    ----------
    conn : `sqlite3.Connection`
        The database, in a write transaction.
    table : `str`
        Name of the records table.
    datastore_name : `str`
        Datastore the store belongs to.
    filename : `str`
        Where the database is (for messages).

    Raises
    ------
    RecordsStoreError
        Raised if the database has another schema version.
    ConfigError
        Raised if the database belongs to another datastore.
    """
    # IF NOT EXISTS, so reopening a file is harmless: opening a store costs ~1 ms.
    for statement in create_statements(table):
        conn.execute(statement)
    found: dict[str, str] = dict(conn.execute(f'SELECT "key", value FROM {META_TABLE}').fetchall())
    version = found.get("records_schema_version")
    if version is not None and version != RECORDS_SCHEMA_VERSION:
        raise RecordsStoreError(
            f"Records database {filename!r} has schema version {version}, this s3qbb "
            f"understands version {RECORDS_SCHEMA_VERSION}; use a matching s3qbb version."
        )
    name = found.get("datastore_name")
    if name is not None and name != datastore_name:
        raise ConfigError(
            f"Records database {filename!r} belongs to datastore {name!r}, not "
            f"{datastore_name!r}; use another file or the matching datastore name."
        )
    wanted = {"records_schema_version": RECORDS_SCHEMA_VERSION, "datastore_name": datastore_name}
    missing = [(k, v) for k, v in wanted.items() if k not in found]
    if missing:
        conn.executemany(f'INSERT INTO {META_TABLE} ("key", value) VALUES (?, ?)', missing)
    conn.execute(f"INSERT OR IGNORE INTO {OPAQUE_META_TABLE} (table_name) VALUES (?)", (table,))


@contextlib.contextmanager
def writing(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in a write transaction (``BEGIN IMMEDIATE``), committed unless it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextlib.contextmanager
def reading(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in a read transaction (``BEGIN``), so that its statements see one snapshot."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def batches(ids: Sequence[uuid.UUID]) -> Iterator[Sequence[uuid.UUID]]:
    """Split IDs into batches of at most `BATCH`."""
    for start in range(0, len(ids), BATCH):
        yield ids[start : start + BATCH]


@functools.lru_cache(maxsize=64)
def _marks(count: int) -> str:
    return ", ".join("?" * count)


class RecordsSQL:
    """The statements of a records store, for one records table and datastore name.

    Parameters
    ----------
    table : `str`
        Name of the records table.
    datastore_name : `str`
        Datastore whose ``dataset_location`` rows the statements use (bound
        as the first parameter of the statements that need it).

    Notes
    -----
    Dataset IDs are bound and returned as stored: 32 lower-case hex digits
    (``uuid.UUID.hex``), what daf_butler's ``GUID`` type writes to SQLite.
    Statements taking a list of IDs are made by the methods with an ``n``
    argument (the number of IDs, each bound to one ``?``).
    """

    COLUMNS = ("dataset_id", "path", "formatter", "storage_class", "component", "checksum", "file_size")
    """Columns of the records table, in the order of every row the statements return."""

    def __init__(self, table: str, datastore_name: str) -> None:
        self.table = check_records_table_name(table)
        self.datastore_name = datastore_name
        r = table
        cols = ", ".join(f"r.{c}" for c in self.COLUMNS)
        self._live = f"JOIN {_LOCATION} AS l ON l.dataset_id = r.dataset_id AND l.datastore_name = ?"
        self._select = f"SELECT {cols} FROM {r} AS r"
        self.select_one = f"{self._select} {self._live} WHERE r.dataset_id = ? ORDER BY r.component"
        """Live rows of one dataset (parameters: datastore name, ID)."""
        self.select_all = f"{self._select} {self._live} ORDER BY r.dataset_id, r.component"
        """Every live row (parameter: datastore name)."""
        self.has = f"SELECT 1 FROM {r} AS r {self._live} WHERE r.dataset_id = ? LIMIT 1"
        """Whether a dataset has live rows (parameters: datastore name, ID)."""
        self.exists = f"SELECT 1 FROM {r} WHERE dataset_id = ? LIMIT 1"
        """Whether a dataset has rows, trashed or not (parameter: ID)."""
        self.live_ids = f"SELECT DISTINCT r.dataset_id FROM {r} AS r {self._live}"
        """IDs of the datasets with live rows (parameter: datastore name)."""
        self.insert = f"INSERT INTO {r} ({', '.join(self.COLUMNS)}) VALUES ({_marks(len(self.COLUMNS))})"
        """Add one row (parameters: the `COLUMNS`)."""
        self.locate = (
            f"INSERT INTO {_LOCATION} (datastore_name, dataset_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
        )
        """Mark a dataset as stored here (parameters: datastore name, ID)."""
        self.trash = f"INSERT INTO {_TRASH} (dataset_id, datastore_name) VALUES (?, ?) ON CONFLICT DO NOTHING"
        """Put a dataset in the trash (parameters: ID, datastore name)."""
        self.trashed_ids = f"SELECT dataset_id FROM {_TRASH} WHERE datastore_name = ?"
        """IDs of the trashed datasets (parameter: datastore name)."""

    def select_many(self, n: int) -> str:
        """Live rows of ``n`` datasets (parameters: datastore name, the IDs)."""
        order = "ORDER BY r.dataset_id, r.component"
        return f"{self._select} {self._live} WHERE r.dataset_id IN ({_marks(n)}) {order}"

    def select_any(self, n: int) -> str:
        """Rows of ``n`` datasets, trashed or not (parameters: the IDs)."""
        return f"{self._select} WHERE r.dataset_id IN ({_marks(n)})"

    def existing_ids(self, n: int) -> str:
        """Which of ``n`` datasets have rows, trashed or not (parameters: the IDs)."""
        return f"SELECT DISTINCT dataset_id FROM {self.table} WHERE dataset_id IN ({_marks(n)})"

    def delete_records(self, n: int) -> str:
        """Delete the rows of ``n`` datasets (parameters: the IDs)."""
        return f"DELETE FROM {self.table} WHERE dataset_id IN ({_marks(n)})"

    def located_ids(self, n: int) -> str:
        """Which of ``n`` datasets are stored here (parameters: datastore name, the IDs)."""
        return f"SELECT dataset_id FROM {_LOCATION} WHERE datastore_name = ? AND dataset_id IN ({_marks(n)})"

    def delete_location(self, n: int) -> str:
        """Unmark ``n`` datasets as stored here (parameters: datastore name, the IDs)."""
        return f"DELETE FROM {_LOCATION} WHERE datastore_name = ? AND dataset_id IN ({_marks(n)})"

    def trashed_in(self, n: int) -> str:
        """Which of ``n`` datasets are in the trash (parameters: datastore name, the IDs)."""
        return f"SELECT dataset_id FROM {_TRASH} WHERE datastore_name = ? AND dataset_id IN ({_marks(n)})"

    def delete_trash(self, n: int) -> str:
        """Take ``n`` datasets out of the trash (parameters: datastore name, the IDs)."""
        return f"DELETE FROM {_TRASH} WHERE datastore_name = ? AND dataset_id IN ({_marks(n)})"

    def query_ids(
        self,
        conn: sqlite3.Connection,
        statement: Callable[[int], str],
        ids: Sequence[uuid.UUID],
        *,
        named: bool,
    ) -> list[str]:
        """Run a one-column ID query once per batch of ``ids``; return the hex IDs it found.

        ``named`` says whether the statement's first parameter is the datastore name.
        """
        prefix = (self.datastore_name,) if named else ()
        return [
            row[0]
            for batch in batches(ids)
            for row in conn.execute(statement(len(batch)), (*prefix, *(i.hex for i in batch)))
        ]

    def execute_in(
        self,
        conn: sqlite3.Connection,
        statement: Callable[[int], str],
        ids: Sequence[uuid.UUID],
        *,
        named: bool,
    ) -> None:
        """Run a statement taking a list of IDs once per batch of ``ids`` (see `query_ids`)."""
        prefix = (self.datastore_name,) if named else ()
        for batch in batches(ids):
            conn.execute(statement(len(batch)), (*prefix, *(i.hex for i in batch)))
