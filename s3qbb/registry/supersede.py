"""Replace an ingested quantum's rows with those of a later attempt (last attempt wins).

`~s3qbb.registry.writer.RegistryWriter` calls these inside its batch
transaction: `stored_attempts` locks the quanta already in the registry
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite writers hold the database
lock already), `remove_quanta` deletes what the earlier attempt registered
(its quantum row, its edges and the datastore records of its outputs), the
writer inserts the later attempt's rows, and `drop_orphans` deletes the
datasets that no quantum mentions any more. The comparison of attempts is
`~s3qbb.registry.attempts.attempt_key`.
"""

from __future__ import annotations

__all__ = ["drop_orphans", "mark_examined", "remove_quanta", "stored_attempts"]

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from .schema import make_tables

_CHUNK = 5000
_OUTPUT_ROLES = ("predicted_output", "actual_output")


def _chunks(ids: Iterable[uuid.UUID]) -> Iterable[list[uuid.UUID]]:
    items = sorted(set(ids), key=lambda i: i.int)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def stored_attempts(
    conn: sa.Connection, quantum_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, tuple[str | None, str | None]]:
    """Lock and return the attempt key and files tag of the quanta already in the registry.

    Parameters
    ----------
    conn : `sqlalchemy.Connection`
        A connection inside the writing transaction.
    quantum_ids : `~collections.abc.Iterable` [`uuid.UUID`]
        Quanta about to be written.

    Returns
    -------
    stored : `dict` [`uuid.UUID`, `tuple` [`str` or `None`, `str` or `None`]]
        ``(attempt, files_tag)`` of each quantum present (`None` in rows
        ingested before the registry recorded attempts).
    """
    q = make_tables().quantum
    found: dict[uuid.UUID, tuple[str | None, str | None]] = {}
    for chunk in _chunks(quantum_ids):
        stmt = sa.select(q.c.id, q.c.attempt, q.c.files_tag).where(q.c.id.in_(chunk)).order_by(q.c.id)
        for row in conn.execute(stmt.with_for_update()):
            found[row.id] = (row.attempt, row.files_tag)
    return found


def remove_quanta(conn: sa.Connection, quantum_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Delete quanta with their edges and the datastore records of their outputs.

    Parameters
    ----------
    conn : `sqlalchemy.Connection`
        A connection inside the writing transaction.
    quantum_ids : `~collections.abc.Iterable` [`uuid.UUID`]
        Quanta whose earlier attempt is superseded.

    Returns
    -------
    datasets : `set` [`uuid.UUID`]
        Every dataset the removed quanta mentioned, to pass to `drop_orphans`
        once the later attempts are inserted.
    """
    t = make_tables()
    edge, record, quantum = t.edge, t.record, t.quantum
    mentioned: set[uuid.UUID] = set()
    outputs: set[uuid.UUID] = set()
    for chunk in _chunks(quantum_ids):
        for dataset_id, role in conn.execute(
            sa.select(edge.c.dataset_id, edge.c.role).where(edge.c.quantum_id.in_(chunk))
        ):
            mentioned.add(dataset_id)
            if role in _OUTPUT_ROLES:
                outputs.add(dataset_id)
        conn.execute(edge.delete().where(edge.c.quantum_id.in_(chunk)))
        conn.execute(quantum.delete().where(quantum.c.id.in_(chunk)))
    for chunk in _chunks(outputs):
        conn.execute(record.delete().where(record.c.dataset_id.in_(chunk)))
    return mentioned


def drop_orphans(conn: sa.Connection, dataset_ids: Iterable[uuid.UUID]) -> int:
    """Delete datasets that no quantum mentions and that have no datastore record.

    Parameters
    ----------
    conn : `sqlalchemy.Connection`
        A connection inside the writing transaction.
    dataset_ids : `~collections.abc.Iterable` [`uuid.UUID`]
        Candidates (the datasets of the removed attempts).

    Returns
    -------
    dropped : `int`
        Datasets deleted.
    """
    t = make_tables()
    dropped = 0
    for chunk in _chunks(dataset_ids):
        used = set(
            conn.execute(sa.select(t.edge.c.dataset_id).where(t.edge.c.dataset_id.in_(chunk))).scalars()
        )
        used.update(
            conn.execute(sa.select(t.record.c.dataset_id).where(t.record.c.dataset_id.in_(chunk))).scalars()
        )
        orphans = [i for i in chunk if i not in used]
        if orphans:
            conn.execute(t.data_id.delete().where(t.data_id.c.dataset_id.in_(orphans)))
            conn.execute(t.dataset.delete().where(t.dataset.c.id.in_(orphans)))
            dropped += len(orphans)
    return dropped


def mark_examined(conn: sa.Connection, tags: Mapping[uuid.UUID, Any]) -> None:
    """Remember the files tag of quanta whose files were read but kept out (not a later attempt).

    Parameters
    ----------
    conn : `sqlalchemy.Connection`
        A connection inside the writing transaction.
    tags : `~collections.abc.Mapping` [`uuid.UUID`, `str`]
        Files tag by quantum: a later ingest skips these files without a download.
    """
    q = make_tables().quantum
    rows = [{"b_id": qid, "b_tag": tag} for qid, tag in sorted(tags.items(), key=lambda kv: kv[0].int)]
    if rows:
        stmt = q.update().where(q.c.id == sa.bindparam("b_id")).values(files_tag=sa.bindparam("b_tag"))
        conn.execute(stmt, rows)
