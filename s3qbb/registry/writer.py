"""Turn validated quantum files into registry rows and insert them, one transaction per batch.

Idempotency comes from primary keys and ``INSERT ... ON CONFLICT DO NOTHING``
(SQLite: the driver's executemany, parameters converted by SQLAlchemy's bind
processors; PostgreSQL: the rows are ``COPY``-ed into a temporary table, then
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

Where the dataset types, runs and data IDs come from
-----------------------------------------------------
The provenance file holds dataset IDs and the datastore records of the
outputs only. The execution report's ``refs`` list (each a
`~s3qbb.core.wire.SerializedDatasetRef`: ID, dataset type with storage
class and dimensions, data ID, run) describes the quantum's datasets. When a
report or a ref is missing, the dataset row keeps what is known: an output
gets the quantum's run, everything else stays `None`, and a later ingest
that knows more (the producing run, a report with refs) fills the gaps.
"""

from __future__ import annotations

__all__ = ["BatchOutcome", "QuantumRows", "RegistryWriter", "build_rows"]

import dataclasses
import functools
import json
import logging
import operator
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..core.records import NULL_COMPONENT
from ..errors import TransientStorageError
from ..provenance.files import redact
from .attempts import attempt_key
from .database import WRITE_OPTION
from .results import IngestFailure
from .schema import DATASET_ROLES, check_row, make_tables
from .supersede import drop_orphans, mark_examined, remove_quanta, stored_attempts

if TYPE_CHECKING:
    from ..core.wire import SerializedDatasetRef
    from ..retry import RetryPolicy
    from .sources import QuantumBundle

_LOG = logging.getLogger(__name__)

_CHUNK = 5000
"""IDs per ``IN`` list (below SQLite's and PostgreSQL's bound-parameter limits)."""
_ERROR_CHARS = 2000


class _RowError(Exception):
    """A row does not fit the schema."""


@dataclasses.dataclass
class QuantumRows:
    """The rows one quantum contributes to each table (keyed by primary key, first wins)."""

    quantum_id: uuid.UUID
    source: str
    dataset_types: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    datasets: dict[uuid.UUID, dict[str, Any]] = dataclasses.field(default_factory=dict)
    data_ids: dict[tuple[uuid.UUID, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    records: dict[tuple[uuid.UUID, str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    quanta: dict[uuid.UUID, dict[str, Any]] = dataclasses.field(default_factory=dict)
    edges: dict[tuple[uuid.UUID, uuid.UUID, str], dict[str, Any]] = dataclasses.field(default_factory=dict)

    def merge(self, other: QuantumRows) -> None:
        """Add another quantum's rows; rows already present are kept."""
        for name in _ROW_TABLES:
            mine: dict[Any, dict[str, Any]] = getattr(self, name)
            for key, row in getattr(other, name).items():
                mine.setdefault(key, row)


_ROW_TABLES = ("dataset_types", "runs", "datasets", "data_ids", "records", "quanta", "edges")


def _merged(batch: Sequence[QuantumRows]) -> QuantumRows:
    """Return the rows of a batch of quanta; of rows with the same key, the first (as `QuantumRows.merge`)."""
    merged = QuantumRows(batch[0].quantum_id, batch[0].source)
    for name in _ROW_TABLES:
        table: dict[Any, dict[str, Any]] = {}
        for rows in reversed(batch):  # dict.update in C; earlier quanta overwrite later ones: first wins
            table.update(getattr(rows, name))
        setattr(merged, name, table)
    return merged


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""The encoder `json.dumps` would build for these options on every call (stateless, thread-safe)."""


def _canonical(value: Any) -> str:
    return _CANONICAL.encode(value)


@functools.lru_cache(maxsize=1024)
def _dimensions_json(dimensions: tuple[str, ...]) -> str:
    """`_canonical` of a dataset type's sorted dimensions (a few distinct lists recur in every quantum)."""
    return _canonical(list(dimensions))


def _checked(table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
    problem = check_row(table, row)
    if problem is not None:
        raise _RowError(problem)
    return row


def _dataset_type_of(ref: SerializedDatasetRef) -> tuple[str, str | None, list[str] | None] | None:
    simple = ref.datasetType
    if simple is None:
        return None
    name, _, component = simple.name.partition(".")
    storage_class = simple.parentStorageClass if component else simple.storageClass
    return name, storage_class, None if simple.dimensions is None else sorted(simple.dimensions)


def build_rows(bundle: QuantumBundle, *, default_run: str | None) -> QuantumRows:
    """Build the rows of one validated quantum.

    Parameters
    ----------
    bundle : `~s3qbb.registry.sources.QuantumBundle`
        Its provenance and report.
    default_run : `str`, optional
        Run of the quantum when neither its report nor the refs of its
        outputs name one.

    Returns
    -------
    rows : `QuantumRows`
        Rows of every table.

    Raises
    ------
    ValueError
        Raised if a value does not fit its column (too long) or a data ID is
        not a mapping of dimension names to values.
    """
    t = make_tables()
    prov, report = bundle.provenance, bundle.report
    qid = bundle.quantum_id
    outputs = prov.predicted_outputs
    all_ids = prov.predicted_inputs | outputs
    refs: dict[uuid.UUID, SerializedDatasetRef] = {}
    for ref in report.refs if report is not None else ():
        if ref.id in all_ids:
            refs.setdefault(ref.id, ref)
    run = report.run if report is not None else None
    if run is None:
        output_runs = {refs[i].run for i in outputs if i in refs and refs[i].run}
        run = output_runs.pop() if len(output_runs) == 1 else default_run
    rows = QuantumRows(qid, bundle.source)
    try:
        if run is not None:
            rows.runs[run] = _checked(t.run, {"name": run})
        for dataset_id in sorted(all_ids, key=_by_int):
            known = refs.get(dataset_id)
            dataset_type = _dataset_type_of(known) if known is not None else None
            dataset_run = known.run if known is not None and known.run else None
            if dataset_run is None and dataset_id in outputs:
                dataset_run = run
            data_id = known.dataId.dataId if known is not None and known.dataId is not None else None
            if dataset_type is not None:
                name, storage_class, dimensions = dataset_type
                type_row = {
                    "name": name,
                    "storage_class": storage_class,
                    "dimensions": None if dimensions is None else _dimensions_json(tuple(dimensions)),
                }
                if rows.dataset_types.get(name) != type_row:  # an equal row was checked already
                    rows.dataset_types.setdefault(name, _checked(t.dataset_type, type_row))
            if dataset_run is not None and dataset_run not in rows.runs:  # present: the same row, checked
                rows.runs[dataset_run] = _checked(t.run, {"name": dataset_run})
            rows.datasets[dataset_id] = _checked(
                t.dataset,
                {
                    "id": dataset_id,
                    "dataset_type": None if dataset_type is None else dataset_type[0],
                    "run": dataset_run,
                    "data_id": None if data_id is None else _canonical(data_id),
                },
            )
            for dimension, value in (data_id or {}).items():
                rows.data_ids[dataset_id, dimension] = _checked(
                    t.data_id, {"dataset_id": dataset_id, "dimension": dimension, "value": str(value)}
                )
        for datastore_name, simple in prov.datastore_records.items():
            for by_dataset in simple.records.values():
                for id_hex, by_table in by_dataset.items():
                    dataset_id = uuid.UUID(id_hex)
                    for stored in by_table.values():
                        for rec in stored:
                            component = rec.component or NULL_COMPONENT
                            rows.records.setdefault(
                                (dataset_id, datastore_name, component),
                                _checked(
                                    t.record,
                                    {
                                        "dataset_id": dataset_id,
                                        "datastore_name": datastore_name,
                                        "component": component,
                                        "path": rec.path,
                                        "formatter": rec.formatter,
                                        "storage_class": rec.storage_class,
                                        "checksum": rec.checksum,
                                        "file_size": rec.file_size,
                                    },
                                ),
                            )
        error = None
        if report is not None and report.error is not None:
            error = f"{report.error.type}: {report.error.message}"
        rows.quanta[qid] = _checked(
            t.quantum,
            {
                "id": qid,
                "run": run,
                "task_label": report.task_label if report else None,
                "task_name": report.task_name if report else None,
                "status": report.status if report else None,
                "started_at": report.started_at if report else None,
                "ended_at": report.ended_at if report else None,
                "host": report.host if report else None,
                "error": error,
                "source": bundle.source,
                "attempt": attempt_key(report),
                "files_tag": bundle.files_tag or None,
            },
        )
        for role in DATASET_ROLES:
            for dataset_id in getattr(prov, f"{role}s"):
                rows.edges[qid, dataset_id, role] = {
                    "quantum_id": qid,
                    "dataset_id": dataset_id,
                    "role": role,
                }
    except _RowError as err:
        raise ValueError(f"quantum {qid} cannot be recorded: {err}") from err
    return rows


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


_by_int = operator.attrgetter("int")
"""Sort key of UUIDs: their integers compare in C, in the order of the database's primary keys."""


def _id_and_text(key: tuple[uuid.UUID, str]) -> tuple[int, str]:
    return key[0].int, key[1]


def _id_and_texts(key: tuple[uuid.UUID, str, str]) -> tuple[int, str, str]:
    return key[0].int, key[1], key[2]


def _two_ids_and_text(key: tuple[uuid.UUID, uuid.UUID, str]) -> tuple[int, int, str]:
    return key[0].int, key[1].int, key[2]


def _sorted(rows: dict[Any, dict[str, Any]], key: Callable[[Any], Any] | None = None) -> list[dict[str, Any]]:
    """Return the rows in the order of their primary key (``key`` turns a UUID into its integer)."""
    return [rows[k] for k in sorted(rows, key=key)]


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclasses.dataclass(frozen=True)
class _SqlitePlan:
    """How `RegistryWriter` inserts rows into one SQLite table through the driver."""

    sql: str
    """``INSERT INTO t (columns) VALUES (?, ...) ON CONFLICT DO NOTHING``."""
    get: Callable[[dict[str, Any]], Any]
    """A row's values, in column order (a tuple, or one value for a one-column table)."""
    single: bool
    """Whether the table has one column."""
    processors: dict[str, Callable[[Any], Any]]
    """The SQLAlchemy bind processor of each column that has one, by column name."""
    by_index: tuple[tuple[int, Callable[[Any], Any]], ...]
    """The same, by column index."""

    def params(self, rows: list[dict[str, Any]]) -> list[Any]:
        """Return the driver parameters of rows."""
        get = self.get
        if self.single:
            return [(get(row),) for row in rows]
        if not self.by_index:
            return [get(row) for row in rows]
        out: list[Any] = []
        for row in rows:
            values = list(get(row))
            for index, process in self.by_index:
                values[index] = process(values[index])
            out.append(tuple(values))
        return out


def _sqlite_plan(table: sa.Table, dialect: sa.Dialect) -> _SqlitePlan:
    quote = dialect.identifier_preparer.quote
    names = [c.name for c in table.columns]
    processors: dict[str, Callable[[Any], Any]] = {}
    by_index: list[tuple[int, Callable[[Any], Any]]] = []
    for index, column in enumerate(table.columns):
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[column.name] = process
            by_index.append((index, process))
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join('?' * len(names))}) ON CONFLICT DO NOTHING"
    )
    return _SqlitePlan(sql, operator.itemgetter(*names), len(names) == 1, processors, tuple(by_index))


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
                row = rows.quanta[rows.quantum_id]
                old = stored.get(rows.quantum_id)
                if old is None:
                    fresh.append(rows)
                elif row["attempt"] > (old[0] or ""):
                    replacing.append(rows)
                else:
                    examined[rows.quantum_id] = row["files_tag"]
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
            merged = _merged([*fresh, *replacing])
            # Table by table in RegistryTables.insert_order, rows sorted by primary key: every writer
            # locks rows in the same order, so concurrent writers never deadlock.
            self._ignore(conn, t.dataset_type, _sorted(merged.dataset_types))
            self._ignore(conn, t.run, _sorted(merged.runs))
            datasets = _sorted(merged.datasets, _by_int)
            new = set(self._returning(conn, t.dataset, datasets, t.dataset.c.id))
            outcome.datasets_added = len(new)
            self._fill_datasets(conn, [r for r in datasets if r["id"] not in new])
            self._ignore(conn, t.data_id, _sorted(merged.data_ids, _id_and_text))
            outcome.records_added = self._count_new(conn, t.record, _sorted(merged.records, _id_and_texts))
            inserted = set(self._returning(conn, t.quantum, _sorted(merged.quanta, _by_int), t.quantum.c.id))
            replaced = {rows.quantum_id for rows in replacing}
            outcome.quanta_added = len(inserted - replaced)
            outcome.quanta_replaced = len(inserted & replaced)
            self._ignore(conn, t.edge, _sorted(merged.edges, _two_ids_and_text))
            drop_orphans(conn, earlier)
        return outcome

    def _ignore(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        self._insert_new(conn, table, rows, None)

    def _returning(
        self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], column: sa.Column[Any]
    ) -> list[Any]:
        return self._insert_new(conn, table, rows, column)

    def _plan(self, table: sa.Table) -> _SqlitePlan:
        plan = self._plans.get(table.name)
        if plan is None:
            plan = self._plans[table.name] = _sqlite_plan(table, self._engine.dialect)
        return plan

    def _count_new(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
        """Insert rows whose primary key is new, in the given order; return how many were."""
        if not rows:
            return 0
        if self._engine.dialect.name == "postgresql":
            return len(self._copy_insert(conn, table, rows, table.primary_key.columns[0]))
        return self._sqlite_insert(conn, table, rows)

    def _insert_new(
        self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], column: sa.Column[Any] | None
    ) -> list[Any]:
        """Insert rows whose primary key is new, in the given order; return ``column`` of each inserted.

        ``column``, if given, is the table's primary key (a single column).
        """
        if not rows:
            return []
        if self._engine.dialect.name == "postgresql":
            return self._copy_insert(conn, table, rows, column)
        if column is None:
            self._sqlite_insert(conn, table, rows)
            return []
        return self._sqlite_insert_new(conn, table, rows, column)

    def _sqlite_insert(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
        """SQLite: one ``executemany`` of ``INSERT ... ON CONFLICT DO NOTHING``; return the rows inserted.

        The statement is sent as driver SQL (SQLAlchemy's events, error
        wrapping and retries still apply) with parameters converted by the
        columns' own SQLAlchemy bind processors (UUIDs, times), so the rows
        are stored exactly as SQLAlchemy stores them; compiling and
        processing them row by row in SQLAlchemy cost more than SQLite's inserts.
        """
        plan = self._plan(table)
        result = conn.exec_driver_sql(plan.sql, plan.params(rows))
        return int(result.rowcount)  # summed over the rows; an ignored conflict changes nothing

    def _sqlite_insert_new(
        self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], column: sa.Column[Any]
    ) -> list[Any]:
        """SQLite: `_sqlite_insert`, after one ``SELECT`` per 5,000 keys finds which keys exist already.

        The writing transaction began with ``BEGIN IMMEDIATE``: no other
        writer can insert between the ``SELECT`` and the ``INSERT``.
        """
        process = self._plan(table).processors.get(column.name)
        keys = [row[column.name] for row in rows]
        stored = [process(k) for k in keys] if process is not None else keys
        quote = self._engine.dialect.identifier_preparer.quote
        name, target = quote(column.name), quote(table.name)
        existing: set[Any] = set()
        for chunk in _chunks(stored):
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT {name} FROM {target} WHERE {name} IN ({marks})"
            existing.update(conn.exec_driver_sql(query, tuple(chunk)).scalars())
        self._sqlite_insert(conn, table, rows)
        return [k for k, s in zip(keys, stored, strict=True) if s not in existing]

    def _copy_insert(
        self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], column: sa.Column[Any] | None
    ) -> list[Any]:
        """PostgreSQL: COPY the rows into a temporary table, then one ``INSERT ... SELECT ... ON CONFLICT``.

        About ten times faster than row-by-row inserts. ``ORDER BY`` the
        primary key keeps the lock order of `RegistryWriter.write`.
        """
        quote = self._engine.dialect.identifier_preparer.quote
        namespace = conn.get_execution_options().get("schema_translate_map", {}).get(None)
        target = f"{quote(namespace)}.{quote(table.name)}" if namespace else quote(table.name)
        stage = quote(f"s3qbb_stage_{table.name}")
        names = [c.name for c in table.columns]
        columns = ", ".join(quote(n) for n in names)
        key = ", ".join(quote(c.name) for c in table.primary_key.columns)
        # Kept for the session and emptied by every commit (and rollback): each transaction stages
        # each table once, into an empty table.
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (LIKE {target}) ON COMMIT DELETE ROWS"
        )
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY {stage} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row.get(n) for n in names])
        finally:
            cursor.close()
        returning = f" RETURNING {quote(column.name)}" if column is not None else ""
        result = conn.exec_driver_sql(
            f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage} ORDER BY {key} "
            f"ON CONFLICT DO NOTHING{returning}"
        )
        return list(result.scalars()) if column is not None else []

    def _fill_datasets(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        """Fill the type, run and data ID of existing datasets that lack them, from rows that know them."""
        d = self._tables.dataset
        rows = [r for r in rows if r["dataset_type"] is not None or r["run"] is not None or r["data_id"]]
        if not rows:
            return
        incomplete = sa.or_(d.c.dataset_type.is_(None), d.c.run.is_(None), d.c.data_id.is_(None))
        lacking: set[uuid.UUID] = set()
        for chunk in _chunks([r["id"] for r in rows]):
            lacking.update(conn.execute(sa.select(d.c.id).where(d.c.id.in_(chunk), incomplete)).scalars())
        updates = [
            {"b_id": r["id"], "b_type": r["dataset_type"], "b_run": r["run"], "b_data_id": r["data_id"]}
            for r in rows
            if r["id"] in lacking
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
