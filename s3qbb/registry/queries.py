"""Registry queries as plain functions over a SQLAlchemy connection, returning plain data.

Every query uses an index: datasets by run and type (``dataset_run_type_idx``),
by data ID (``dataset_data_id_value_idx``), producers by
``(dataset_id, role)`` (``quantum_dataset_dataset_idx``), inputs by the
edge primary key. Provenance walks upward one level per round of three
queries, whatever the number of datasets in the registry.
"""

from __future__ import annotations

__all__ = ["count_datasets", "count_rows", "find_datasets", "get_quantum", "provenance_tree"]

import datetime
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..core.records import NULL_COMPONENT
from ..errors import ConfigError, DatasetNotFoundError
from .results import DatasetRow, ProvenanceTree, QuantumRow, StoredRecord
from .schema import DATASET_ROLES, make_tables

if TYPE_CHECKING:
    from .schema import DatasetRole

_CHUNK = 5000


def _chunks(ids: Sequence[uuid.UUID]) -> Iterable[Sequence[uuid.UUID]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _utc(value: datetime.datetime | None) -> datetime.datetime | None:
    # SQLite keeps no offset: the values were written in UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=datetime.UTC)


def _dataset_columns() -> tuple[Any, ...]:
    t = make_tables()
    d, r = t.dataset, t.record
    return (
        d.c.id,
        d.c.dataset_type,
        d.c.run,
        d.c.data_id,
        r.c.datastore_name,
        r.c.path,
        r.c.formatter,
        r.c.storage_class,
        r.c.component,
        r.c.checksum,
        r.c.file_size,
    )


def _dataset_rows(conn: sa.Connection, stmt: sa.Select[Any]) -> dict[uuid.UUID, DatasetRow]:
    """Run a dataset select (outer-joined to records) and fold records into their dataset rows."""
    base: dict[uuid.UUID, tuple[Any, ...]] = {}
    records: dict[uuid.UUID, list[StoredRecord]] = {}
    for row in conn.execute(stmt):
        dataset_id = row[0]
        if dataset_id not in base:
            base[dataset_id] = tuple(row[1:4])
            records[dataset_id] = []
        if row.datastore_name is not None:
            records[dataset_id].append(
                StoredRecord(
                    datastore_name=row.datastore_name,
                    path=row.path,
                    formatter=row.formatter,
                    storage_class=row.storage_class,
                    component=None if row.component == NULL_COMPONENT else row.component,
                    checksum=row.checksum,
                    file_size=row.file_size,
                )
            )
    return {
        dataset_id: DatasetRow(
            id=dataset_id,
            dataset_type=dataset_type,
            run=run,
            data_id=None if data_id is None else json.loads(data_id),
            records=tuple(sorted(records[dataset_id], key=lambda r: (r.datastore_name, r.component or ""))),
        )
        for dataset_id, (dataset_type, run, data_id) in base.items()
    }


def _joined_select() -> sa.Select[Any]:
    t = make_tables()
    return sa.select(*_dataset_columns()).select_from(
        t.dataset.outerjoin(t.record, t.record.c.dataset_id == t.dataset.c.id)
    )


def _dataset_filters(
    *,
    run: str | None,
    dataset_type: str | None,
    data_id: Mapping[str, int | str] | None,
    stored: bool | None,
) -> list[sa.ColumnElement[bool]]:
    """Return the conditions on ``dataset`` of `find_datasets` (records outer-joined or not)."""
    t = make_tables()
    d, r, kv = t.dataset, t.record, t.data_id
    conditions: list[sa.ColumnElement[bool]] = []
    if run is not None:
        conditions.append(d.c.run == run)
    if dataset_type is not None:
        conditions.append(d.c.dataset_type == dataset_type)
    matching = [
        sa.select(kv.c.dataset_id).where(kv.c.dimension == dimension, kv.c.value == str(value))
        for dimension, value in (data_id or {}).items()
    ]
    if matching:
        # One ID set, intersected before the datasets are read: neither planner knows which
        # dimension is the selective one, and probing the datasets of the first one can be slow.
        conditions.append(d.c.id.in_(sa.intersect(*matching) if len(matching) > 1 else matching[0]))
    if stored is not None:
        other = r.alias("stored_record")  # ``r`` may be outer-joined in the main query
        has_records = sa.exists().where(other.c.dataset_id == d.c.id)
        conditions.append(has_records if stored else ~has_records)
    return conditions


def find_datasets(
    conn: sa.Connection,
    *,
    run: str | None = None,
    dataset_type: str | None = None,
    data_id: Mapping[str, int | str] | None = None,
    stored: bool | None = None,
    limit: int | None = None,
) -> list[DatasetRow]:
    """Return the datasets matching every filter given.

    Parameters
    ----------
    conn : `sqlalchemy.Connection`
        Registry connection.
    run : `str`, optional
        Run collection.
    dataset_type : `str`, optional
        Dataset type name.
    data_id : `~collections.abc.Mapping` [`str`, `int` or `str`], optional
        Dimension values the data ID must have (a subset matches:
        ``{"visit": 42}`` finds every detector of visit 42). Values are
        compared as text, so ``42`` and ``"42"`` are the same.
    stored : `bool`, optional
        `True`: only datasets with datastore records; `False`: only those
        without (predicted, never written); `None`: both.
    limit : `int`, optional
        Return at most this many datasets, the first in the sort order (a
        ``LIMIT`` in the query, on datasets rather than on their records).

    Returns
    -------
    datasets : `list` [`DatasetRow`]
        With their records, sorted by dataset type, data ID and ID.
    """
    t = make_tables()
    d, r = t.dataset, t.record
    conditions = _dataset_filters(run=run, dataset_type=dataset_type, data_id=data_id, stored=stored)
    order = (sa.func.coalesce(d.c.dataset_type, ""), sa.func.coalesce(d.c.data_id, ""), d.c.id)
    stmt = _joined_select()
    if limit is None:
        stmt = stmt.where(*conditions)
    else:  # the first `limit` datasets, then all their records (a dataset may have several)
        first = sa.select(d.c.id).where(*conditions).order_by(*order).limit(limit)
        stmt = stmt.where(d.c.id.in_(first.scalar_subquery()))
    stmt = stmt.order_by(*order, r.c.datastore_name)
    return list(_dataset_rows(conn, stmt).values())


def count_datasets(
    conn: sa.Connection,
    *,
    run: str | None = None,
    dataset_type: str | None = None,
    data_id: Mapping[str, int | str] | None = None,
    stored: bool | None = None,
) -> int:
    """Return how many datasets `find_datasets` would return with the same filters and no limit."""
    d = make_tables().dataset
    conditions = _dataset_filters(run=run, dataset_type=dataset_type, data_id=data_id, stored=stored)
    return int(conn.execute(sa.select(sa.func.count()).select_from(d).where(*conditions)).scalar_one())


def _datasets_by_id(conn: sa.Connection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, DatasetRow]:
    d = make_tables().dataset
    found: dict[uuid.UUID, DatasetRow] = {}
    for chunk in _chunks(sorted(set(ids))):
        found.update(_dataset_rows(conn, _joined_select().where(d.c.id.in_(chunk))))
    return found


def _quantum_row(row: Any, datasets: Mapping[DatasetRole, tuple[uuid.UUID, ...]] | None = None) -> QuantumRow:
    return QuantumRow(
        id=row.id,
        run=row.run,
        task_label=row.task_label,
        task_name=row.task_name,
        status=row.status,
        started_at=_utc(row.started_at),
        ended_at=_utc(row.ended_at),
        host=row.host,
        error=row.error,
        source=row.source,
        attempt=row.attempt,
        **({"datasets": datasets} if datasets is not None else {}),
    )


def get_quantum(conn: sa.Connection, quantum_id: uuid.UUID) -> QuantumRow | None:
    """Return a quantum with its datasets by role.

    Parameters
    ----------
    conn : `sqlalchemy.Connection`
        Registry connection.
    quantum_id : `uuid.UUID`
        Quantum ID.

    Returns
    -------
    quantum : `QuantumRow` or `None`
        The quantum, ``datasets`` filled for every role (sorted IDs); `None`
        if the registry does not know it.
    """
    t = make_tables()
    row = conn.execute(sa.select(t.quantum).where(t.quantum.c.id == quantum_id)).first()
    if row is None:
        return None
    by_role: dict[str, list[uuid.UUID]] = {role: [] for role in DATASET_ROLES}
    edges = sa.select(t.edge.c.role, t.edge.c.dataset_id).where(t.edge.c.quantum_id == quantum_id)
    for role, dataset_id in conn.execute(edges.order_by(t.edge.c.role, t.edge.c.dataset_id)):
        by_role.setdefault(role, []).append(dataset_id)
    datasets: dict[Any, tuple[uuid.UUID, ...]] = {role: tuple(ids) for role, ids in by_role.items()}
    return _quantum_row(row, datasets)


def provenance_tree(conn: sa.Connection, dataset_id: uuid.UUID, depth: int = 1) -> ProvenanceTree:
    """Return where a dataset came from, up to ``depth`` producing quanta upward.

    Parameters
    ----------
    conn : `sqlalchemy.Connection`
        Registry connection.
    dataset_id : `uuid.UUID`
        The dataset.
    depth : `int`, optional
        Levels to follow: 0 gives the dataset alone, 1 its producing quantum
        and that quantum's actual inputs, 2 also their producers and inputs...

    Returns
    -------
    tree : `ProvenanceTree`
        The datasets and quanta reached; each dataset and quantum once.

    Raises
    ------
    DatasetNotFoundError
        Raised if the registry does not know the dataset.
    ConfigError
        Raised if ``depth`` is negative.
    """
    if depth < 0:
        raise ConfigError(f"Provenance depth must be 0 or more, not {depth}.")
    t = make_tables()
    e, q = t.edge, t.quantum
    datasets = _datasets_by_id(conn, [dataset_id])
    if dataset_id not in datasets:
        raise DatasetNotFoundError(
            f"Dataset {dataset_id} is not in the registry; ingest the run that wrote or read it first."
        )
    quanta: dict[uuid.UUID, QuantumRow] = {}
    producers: dict[uuid.UUID, uuid.UUID] = {}
    inputs: dict[uuid.UUID, tuple[uuid.UUID, ...]] = {}
    frontier = [dataset_id]
    for _ in range(depth):
        new_quanta: list[uuid.UUID] = []
        for chunk in _chunks(sorted(frontier)):
            stmt = (
                sa.select(e.c.dataset_id, q)
                .join(q, q.c.id == e.c.quantum_id)
                .where(e.c.role == "actual_output", e.c.dataset_id.in_(chunk))
                .order_by(e.c.dataset_id, q.c.id)
            )
            for row in conn.execute(stmt):
                if row.dataset_id in producers:
                    continue  # Written twice (hostile data): keep the first producer, by ID.
                producers[row.dataset_id] = row.id
                if row.id not in quanta:
                    quanta[row.id] = _quantum_row(row)
                    new_quanta.append(row.id)
        found: dict[uuid.UUID, list[uuid.UUID]] = {qid: [] for qid in new_quanta}
        for chunk in _chunks(sorted(new_quanta)):
            stmt = (
                sa.select(e.c.quantum_id, e.c.dataset_id)
                .where(e.c.role == "actual_input", e.c.quantum_id.in_(chunk))
                .order_by(e.c.quantum_id, e.c.dataset_id)
            )
            for qid, input_id in conn.execute(stmt):
                found[qid].append(input_id)
        inputs.update((qid, tuple(ids)) for qid, ids in found.items())
        frontier = sorted({i for ids in found.values() for i in ids} - datasets.keys())
        datasets.update(_datasets_by_id(conn, frontier))
        for missing in set(frontier) - datasets.keys():  # Only if foreign keys were bypassed.
            datasets[missing] = DatasetRow(missing, None, None, None)
        if not frontier:
            break
    return ProvenanceTree(
        root=dataset_id, depth=depth, datasets=datasets, quanta=quanta, producers=producers, inputs=inputs
    )


def count_rows(conn: sa.Connection) -> dict[str, int]:
    """Count the rows of every registry table.

    Parameters
    ----------
    conn : `sqlalchemy.Connection`
        Registry connection.

    Returns
    -------
    counts : `dict` [`str`, `int`]
        Table name to number of rows.
    """
    t = make_tables()
    return {
        table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        for table in t.insert_order
    }
