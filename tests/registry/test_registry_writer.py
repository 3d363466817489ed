"""Tests of RegistryWriter's SQLite insert path: rows stored as SQLAlchemy stores them, exact counts."""

from __future__ import annotations

import gc
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from registry_data import SyntheticRuns, make_ref
from sqlalchemy.dialects import sqlite as sqlite_dialect

from s3qbb.registry import Registry
from s3qbb.registry.rows import ROW_TABLES, QuantumRows, batch_rows, build_rows
from s3qbb.registry.schema import make_tables
from s3qbb.registry.sources import QuantumBundle

RUN = "writer/run"


def _rows(count: int, *, failed: bool = False) -> list[QuantumRows]:
    runs = SyntheticRuns(None, "bucket")
    raw = make_ref("raw", "writer/raw", detector=0, visit=1)
    out = []
    for i in range(count):
        outputs = [make_ref("calexp", RUN, detector=i, visit=1), make_ref("meta", RUN, detector=i, visit=1)]
        q = runs.quantum(RUN, "calibrate", [raw], outputs, write=False, failed=failed)
        bundle = QuantumBundle(q.quantum_id, q.provenance, q.report, f"s3://bucket/{q.quantum_id}", "t" * 64)
        out.append(build_rows(bundle, default_run=None))
    return out


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            t.name: sorted(conn.execute(f'SELECT * FROM "{t.name}"').fetchall(), key=repr)
            for t in make_tables().insert_order
        }
    finally:
        conn.close()


def test_rows_are_stored_as_sqlalchemy_stores_them(tmp_path: Path) -> None:
    batch = _rows(3, failed=True)  # a failed quantum: an error text too
    with Registry.from_url(tmp_path / "fast.sqlite3") as registry:
        outcome = registry._writer.write(batch)
    assert (outcome.quanta_added, outcome.datasets_added, outcome.records_added) == (3, 7, 6)
    # The same rows through SQLAlchemy's own insert (UUIDs as uuid.UUID), into a registry of the same schema.
    with Registry.from_url(tmp_path / "orm.sqlite3") as reference, reference.engine.begin() as conn:
        merged = batch_rows(batch)
        t = make_tables()
        for table, name in (
            (t.dataset_type, "dataset_types"),
            (t.run, "runs"),
            (t.dataset, "datasets"),
            (t.data_id, "data_ids"),
            (t.record, "records"),
            (t.quantum, "quanta"),
            (t.edge, "edges"),
        ):
            uuids = {c.name for c in table.columns if isinstance(c.type, sa.Uuid)}
            columns = list(table.columns)
            rows = [
                {c.name: uuid.UUID(v) if c.name in uuids else v for c, v in zip(columns, row, strict=True)}
                for row in getattr(merged, name)
            ]
            conn.execute(sqlite_dialect.insert(table), rows)
    fast, orm = _dump(tmp_path / "fast.sqlite3"), _dump(tmp_path / "orm.sqlite3")
    assert fast == orm
    assert all(fast[name] for name in fast)
    (started,) = {row[5] for row in fast["quantum"]}
    assert isinstance(started, str) and started.endswith(".000000")  # SQLAlchemy's DATETIME text


def test_counts_are_exact_when_some_rows_exist(tmp_path: Path) -> None:
    first, second = _rows(2)
    with Registry.from_url(tmp_path / "r.sqlite3") as registry:
        assert registry._writer.write([first]).datasets_added == 3  # raw, calexp, meta
        outcome = registry._writer.write([first, second])  # first is the same attempt: left alone
        assert (outcome.quanta_added, outcome.quanta_superseded) == (1, 1)
        assert (outcome.datasets_added, outcome.records_added) == (2, 2)  # raw was known already
        assert registry.counts()["dataset"] == 5


def test_sqlite_errors_keep_sqlalchemy_wrapping(tmp_path: Path) -> None:
    # The driver SQL still goes through SQLAlchemy: its errors are DBAPIErrors (the retry policy and
    # the messages rely on that), and the batch is split to find the quantum at fault.
    (rows,) = _rows(1)
    # No dataset has the quantum's ID: the foreign key refuses the edge.
    rows.edges.append((rows.quantum_id.hex, rows.quantum_id.hex, "actual_output"))
    with Registry.from_url(tmp_path / "r.sqlite3") as registry:
        with pytest.raises(sa.exc.IntegrityError), registry.engine.begin() as conn:
            registry._writer._sqlite_insert(conn, make_tables().edge, rows.edges)
        outcome = registry._writer.write([rows])
        ((source, reason),) = outcome.failures
        assert source == rows.source and "FOREIGN KEY constraint failed" in reason


def test_rows_are_plain_tuples_the_garbage_collector_leaves_alone() -> None:
    # Rows wait for their batch: as tuples of strings, integers, None and times (hex digits for
    # UUIDs) the collector stops tracking them, so full collections do not go through them.
    (rows,) = _rows(1)
    tables = [getattr(rows, name) for name in ROW_TABLES]
    assert all(isinstance(row, tuple) for table in tables for row in table)
    gc.collect()
    assert not any(gc.is_tracked(row) for table in tables for row in table)
    (quantum,) = rows.quanta
    assert quantum[0] == rows.quantum_id.hex
    assert (rows.attempt, rows.files_tag) == (quantum[10], "t" * 64)


def test_batch_rows_keep_the_first_quantum_s_row_and_sort_by_key() -> None:
    first, second = _rows(2)
    raw_hex = first.edges[0][1]
    first.datasets = [r if r[0] != raw_hex else (raw_hex, None, None, None) for r in first.datasets]
    merged = batch_rows([first, second])
    assert [r for r in merged.datasets if r[0] == raw_hex] == [(raw_hex, None, None, None)]
    assert len(merged.datasets) == len({r[0] for r in first.datasets + second.datasets}) == 5
    # Hex digits sort as the UUIDs' integers: the primary key order of both databases.
    assert [uuid.UUID(r[0]).int for r in merged.datasets] == sorted(
        uuid.UUID(r[0]).int for r in merged.datasets
    )
    assert merged.edges == sorted(first.edges + second.edges)
