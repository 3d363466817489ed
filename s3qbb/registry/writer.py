"""Insert quanta's registry rows, one transaction per batch.

Idempotency comes from primary keys and ``INSERT ... ON CONFLICT DO NOTHING``
(SQLite: the driver's executemany of the rows as built, the quantum's times
converted by SQLAlchemy's bind processor; PostgreSQL: the rows are ``COPY``-ed into a temporary table, then
inserted with one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``); counts
come from ``RETURNING`` on PostgreSQL, and on SQLite from the rows changed and
a ``SELECT`` of the keys present inside the write transaction (``BEGIN
IMMEDIATE``: no other writer between the two), so a quantum inserted
concurrently by another process is counted by exactly one of them. A
quantum's row is written in the same transaction as its datasets, records
and edges, so "the quantum row exists" means "the quantum is fully
ingested", which is what makes an interrupted ingest resumable.

A quantum already in the registry is replaced only by a later attempt of it
(`~s3qbb.registry.attempts.attempt_key`, :mod:`.supersede`): in the same
transaction, the earlier attempt's quantum row, edges and output records are
deleted and the later attempt's rows inserted; an earlier or the same
attempt changes nothing.

The rows come from :mod:`.rows`, already in the form the driver takes.
"""

from __future__ import annotations

__all__ = ["BatchOutcome", "RegistryWriter", "describe_db_error"]

import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import TransientStorageError
from ..provenance.files import redact
from .database import WRITE_OPTION
from .results import IngestFailure
from .rows import batch_rows
from .schema import make_tables
from .supersede import drop_orphans, mark_examined, remove_quanta, stored_attempts

if TYPE_CHECKING:
    from ..retry import RetryPolicy
    from .rows import QuantumRows, Row

_LOG = logging.getLogger(__name__)

_CHUNK = 5000
"""IDs per ``IN`` list (below SQLite's and PostgreSQL's bound-parameter limits)."""
_ERROR_CHARS = 2000


@dataclasses.dataclass
class BatchOutcome:
    """Counts of rows inserted by one or more batches, and quanta that could not be inserted."""

    quanta_added: int = 0
    datasets_added: int = 0
    records_added: int = 0
    failures: list[IngestFailure] = dataclasses.field(default_factory=list)
    quanta_replaced: int = 0
    """Quanta whose earlier attempt was replaced by a later one."""
    quanta_superseded: int = 0
    """Quanta kept out because the registry holds a later (or the same) attempt."""

    def add(self, other: BatchOutcome) -> None:
        """Accumulate another outcome."""
        self.quanta_added += other.quanta_added
        self.quanta_replaced += other.quanta_replaced
        self.quanta_superseded += other.quanta_superseded
        self.datasets_added += other.datasets_added
        self.records_added += other.records_added
        self.failures.extend(other.failures)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclasses.dataclass(frozen=True)
class _SqlitePlan:
    """How `RegistryWriter` inserts rows into one SQLite table through the driver."""

    sql: str
    """``INSERT INTO t (columns) VALUES (?, ...) ON CONFLICT DO NOTHING``."""
    by_index: tuple[tuple[int, Callable[[Any], Any]], ...]
    """The SQLAlchemy bind processor of each column that has one, by column index, but UUIDs' (the
    rows hold their stored form already)."""

    def params(self, rows: list[Row]) -> list[Row]:
        """Return the driver parameters of rows."""
        if not self.by_index:
            return rows
        out: list[Row] = []
        for row in rows:
            values = list(row)
            for index, process in self.by_index:
                values[index] = process(values[index])
            out.append(tuple(values))
        return out


def _sqlite_plan(table: sa.Table, dialect: sa.Dialect) -> _SqlitePlan:
    quote = dialect.identifier_preparer.quote
    names = [c.name for c in table.columns]
    by_index: list[tuple[int, Callable[[Any], Any]]] = []
    for index, column in enumerate(table.columns):
        if isinstance(column.type, sa.Uuid):
            continue
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            by_index.append((index, process))
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join('?' * len(names))}) ON CONFLICT DO NOTHING"
    )
    return _SqlitePlan(sql, tuple(by_index))


class RegistryWriter:
    """Inserts batches of quanta into a registry.

    Parameters
    ----------
    engine : `sqlalchemy.Engine`
        Registry engine (SQLite or PostgreSQL).
    retry : `~s3qbb.retry.RetryPolicy`
        Retries a batch's transaction on deadlocks, serialization failures,
        lost connections and SQLite lock timeouts.
    describe_error : `~collections.abc.Callable` [[`BaseException`], `str`]
        Turns a database error into text without credentials.
    """

    def __init__(
        self, engine: sa.Engine, retry: RetryPolicy, describe_error: Callable[[BaseException], str]
    ) -> None:
        self._engine = engine
        self._retry = retry
        self._describe = describe_error
        self._tables = make_tables()
        self._plans: dict[str, _SqlitePlan] = {}

    def existing_quanta(self, quantum_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        """Return which of some quanta are in the registry, with their files tag (one query per 5,000 IDs).

        Parameters
        ----------
        quantum_ids : `~collections.abc.Iterable` [`uuid.UUID`]
            Quantum IDs.

        Returns
        -------
        present : `dict` [`uuid.UUID`, `str` or `None`]
            Those already ingested, with the
            `~s3qbb.registry.sources.QuantumFiles.files_tag` of the files last
            read for them (`None` if unknown): files with the same tag are
            not downloaded again.
        """
        ids = sorted(set(quantum_ids))
        q = self._tables.quantum
        found: dict[uuid.UUID, str | None] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(ids):
                found.update(
                    (row.id, row.files_tag)
                    for row in conn.execute(sa.select(q.c.id, q.c.files_tag).where(q.c.id.in_(chunk)))
                )
        return found

    def analyze(self) -> None:
        """Refresh the query planner's statistics of the registry tables.

        After a bulk insert PostgreSQL may otherwise keep plans made for
        empty tables (a data ID query measured at 40 ms instead of 0.6 ms on
        10,000 datasets) until autovacuum gets to them; SQLite gets
        ``PRAGMA optimize``.
        """
        try:
            self._analyze()
        except sa.exc.DBAPIError as err:  # Only an optimisation: autovacuum or a later ingest catches up.
            _LOG.warning("Could not refresh the registry's statistics: %s", self._describe(err))

    def _analyze(self) -> None:
        # A writer (BEGIN IMMEDIATE on SQLite): "PRAGMA optimize" may run ANALYZE, and a read
        # transaction upgraded to a write fails at once when another process writes.
        with self._engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
            if self._engine.dialect.name == "postgresql":
                namespace = conn.get_execution_options().get("schema_translate_map", {}).get(None)
                quote = self._engine.dialect.identifier_preparer.quote
                prefix = f"{quote(namespace)}." if namespace else ""
                names = ", ".join(prefix + quote(t.name) for t in self._tables.insert_order)
                conn.exec_driver_sql(f"ANALYZE {names}")
            else:
                conn.exec_driver_sql("PRAGMA optimize")
            conn.commit()

    def write(self, batch: Sequence[QuantumRows]) -> BatchOutcome:
        """Insert a batch of quanta in one transaction.

        If the database refuses the batch for a reason other than
        contention, each quantum is inserted alone so the one at fault is
        reported (with its provenance file) and the others are kept.

        Parameters
        ----------
        batch : `~collections.abc.Sequence` [`QuantumRows`]
            Quanta to insert.

        Returns
        -------
        outcome : `BatchOutcome`
            Rows inserted and quanta refused.

        Raises
        ------
        s3qbb.errors.TransientStorageError
            Raised if contention or lost connections outlast the retry policy.
        """
        if not batch:
            return BatchOutcome()
        try:
            return self._retry.call(
                self._write_once, batch, description=f"registry insert of {len(batch)} quanta"
            )
        except TransientStorageError:
            raise
        except Exception as err:  # Refused rows (hostile values that passed validation): isolate them.
            if self._retry.is_transient(err):
                raise
            if len(batch) == 1:
                reason = f"the registry refused it: {self._describe(err)}"
                return BatchOutcome(failures=[IngestFailure(batch[0].source, reason[:_ERROR_CHARS])])
        outcome = BatchOutcome()
        for one in batch:
            outcome.add(self.write([one]))
        return outcome

    def _write_once(self, batch: Sequence[QuantumRows]) -> BatchOutcome:
        t = self._tables
        outcome = BatchOutcome()
        with self._engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
            # Last attempt wins: a quantum already in the registry is replaced only by a later attempt.
            stored = stored_attempts(conn, [rows.quantum_id for rows in batch])
            fresh: list[QuantumRows] = []
            replacing: list[QuantumRows] = []
            examined: dict[uuid.UUID, Any] = {}
            for rows in batch:
                old = stored.get(rows.quantum_id)
                if old is None:
                    fresh.append(rows)
                elif rows.attempt > (old[0] or ""):
                    replacing.append(rows)
                else:
                    examined[rows.quantum_id] = rows.files_tag
            mark_examined(conn, examined)
            outcome.quanta_superseded = len(examined)
            if not fresh and not replacing:
                return outcome
            if replacing:
                _LOG.info(
                    "Replacing %d quanta by their later attempts: %s",
                    len(replacing),
                    ", ".join(str(r.quantum_id) for r in replacing[:5]),
                )
            earlier = remove_quanta(conn, [rows.quantum_id for rows in replacing])
            merged = batch_rows([*fresh, *replacing])
            # Table by table in RegistryTables.insert_order, rows sorted by primary key: every writer
            # locks rows in the same order, so concurrent writers never deadlock.
            self._insert(conn, t.dataset_type, merged.dataset_types)
            self._insert(conn, t.run, merged.runs)
            new = set(self._insert_new(conn, t.dataset, merged.datasets))
            outcome.datasets_added = len(new)
            self._fill_datasets(conn, [r for r in merged.datasets if r[0] not in new])
            self._insert(conn, t.data_id, merged.data_ids)
            outcome.records_added = self._insert(conn, t.record, merged.records, count=True)
            inserted = set(self._insert_new(conn, t.quantum, merged.quanta))
            replaced = {rows.quantum_id.hex for rows in replacing}
            outcome.quanta_added = len(inserted - replaced)
            outcome.quanta_replaced = len(inserted & replaced)
            self._insert(conn, t.edge, merged.edges)
            drop_orphans(conn, earlier)
        return outcome

    def _plan(self, table: sa.Table) -> _SqlitePlan:
        plan = self._plans.get(table.name)
        if plan is None:
            plan = self._plans[table.name] = _sqlite_plan(table, self._engine.dialect)
        return plan

    def _insert(self, conn: sa.Connection, table: sa.Table, rows: list[Row], *, count: bool = False) -> int:
        """Insert rows whose primary key is new, in the given order; return how many were if ``count``."""
        if not rows:
            return 0
        if self._engine.dialect.name == "postgresql":
            return len(self._copy_insert(conn, table, rows, returning=count))
        return self._sqlite_insert(conn, table, rows)

    def _insert_new(self, conn: sa.Connection, table: sa.Table, rows: list[Row]) -> list[str]:
        """Insert rows whose primary key is new, in the given order; return the key of each inserted.

        The table's primary key is its first column, a UUID (as 32 hex digits).
        """
        if not rows:
            return []
        if self._engine.dialect.name == "postgresql":
            return [key.hex for key in self._copy_insert(conn, table, rows, returning=True)]
        return self._sqlite_insert_new(conn, table, rows)

    def _sqlite_insert(self, conn: sa.Connection, table: sa.Table, rows: list[Row]) -> int:
        """SQLite: one ``executemany`` of ``INSERT ... ON CONFLICT DO NOTHING``; return the rows inserted.

        The statement is sent as driver SQL (SQLAlchemy's events, error
        wrapping and retries still apply); the rows hold the values as
        SQLAlchemy stores them, but for the quantum's times, converted by the
        columns' own SQLAlchemy bind processors. Compiling and processing the
        rows one by one in SQLAlchemy cost more than SQLite's inserts.
        """
        plan = self._plan(table)
        result = conn.exec_driver_sql(plan.sql, plan.params(rows))
        return int(result.rowcount)  # summed over the rows; an ignored conflict changes nothing

    def _sqlite_insert_new(self, conn: sa.Connection, table: sa.Table, rows: list[Row]) -> list[str]:
        """SQLite: `_sqlite_insert`, after one ``SELECT`` per 5,000 keys finds which keys exist already.

        The writing transaction began with ``BEGIN IMMEDIATE``: no other
        writer can insert between the ``SELECT`` and the ``INSERT``.
        """
        keys: list[str] = [row[0] for row in rows]
        quote = self._engine.dialect.identifier_preparer.quote
        name, target = quote(table.columns[0].name), quote(table.name)
        existing: set[str] = set()
        for chunk in _chunks(keys):
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT {name} FROM {target} WHERE {name} IN ({marks})"
            existing.update(conn.exec_driver_sql(query, tuple(chunk)).scalars())
        self._sqlite_insert(conn, table, rows)
        return [k for k in keys if k not in existing]

    def _copy_insert(
        self, conn: sa.Connection, table: sa.Table, rows: list[Row], *, returning: bool
    ) -> list[Any]:
        """PostgreSQL: COPY the rows into a temporary table, then one ``INSERT ... SELECT ... ON CONFLICT``.

        About ten times faster than row-by-row inserts. ``ORDER BY`` the
        primary key keeps the lock order of `RegistryWriter.write`. Returns
        the first column of each row inserted (as the driver gives it: a
        `uuid.UUID` for a UUID) if ``returning``.
        """
        quote = self._engine.dialect.identifier_preparer.quote
        namespace = conn.get_execution_options().get("schema_translate_map", {}).get(None)
        target = f"{quote(namespace)}.{quote(table.name)}" if namespace else quote(table.name)
        stage = quote(f"s3qbb_stage_{table.name}")
        columns = ", ".join(quote(c.name) for c in table.columns)
        key = ", ".join(quote(c.name) for c in table.primary_key.columns)
        # Kept for the session and emptied by every commit (and rollback): each transaction stages
        # each table once, into an empty table.
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (LIKE {target}) ON COMMIT DELETE ROWS"
        )
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            # UUIDs as hex digits: COPY's text format, which PostgreSQL's uuid input reads.
            with cursor.copy(f"COPY {stage} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
        first = f" RETURNING {quote(table.columns[0].name)}" if returning else ""
        result = conn.exec_driver_sql(
            f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage} ORDER BY {key} "
            f"ON CONFLICT DO NOTHING{first}"
        )
        return list(result.scalars()) if returning else []

    def _fill_datasets(self, conn: sa.Connection, rows: list[Row]) -> None:
        """Fill the type, run and data ID of existing datasets that lack them, from rows that know them."""
        d = self._tables.dataset
        # (id, dataset_type, run, data_id); the few rows left here go through SQLAlchemy, with UUIDs.
        known = {uuid.UUID(r[0]): r for r in rows if r[1] is not None or r[2] is not None or r[3]}
        if not known:
            return
        incomplete = sa.or_(d.c.dataset_type.is_(None), d.c.run.is_(None), d.c.data_id.is_(None))
        lacking: set[uuid.UUID] = set()
        for chunk in _chunks(list(known)):
            lacking.update(conn.execute(sa.select(d.c.id).where(d.c.id.in_(chunk), incomplete)).scalars())
        updates = [
            {"b_id": i, "b_type": r[1], "b_run": r[2], "b_data_id": r[3]}
            for i, r in known.items()
            if i in lacking
        ]
        if not updates:
            return
        stmt = (
            d.update()
            .where(d.c.id == sa.bindparam("b_id"))
            .values(
                dataset_type=sa.func.coalesce(
                    d.c.dataset_type, sa.bindparam("b_type", type_=d.c.dataset_type.type)
                ),
                run=sa.func.coalesce(d.c.run, sa.bindparam("b_run", type_=d.c.run.type)),
                data_id=sa.func.coalesce(d.c.data_id, sa.bindparam("b_data_id", type_=d.c.data_id.type)),
            )
        )
        conn.execute(stmt, updates)


def describe_db_error(err: BaseException, password: str | None) -> str:
    """Return the driver's message of a database error, one line, without the password.

    Parameters
    ----------
    err : `BaseException`
        The error.
    password : `str`, optional
        The registry password, to remove if the driver echoed it.

    Returns
    -------
    text : `str`
        The message, redacted and cut to 2,000 characters.
    """
    orig = getattr(err, "orig", None) or err
    text = " ".join(str(orig).split())
    if password:
        text = text.replace(password, "***")
    return redact(text)[:_ERROR_CHARS]
