"""Opening a new SQLite registry from many processes at once: WAL's ``SQLITE_BUSY`` is waited out."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from s3qbb.registry.database import WRITE_OPTION, create_registry_engine
from s3qbb.sqlite_engine import run_pragma


def _busy(code: int = 5) -> sqlite3.OperationalError:
    err = sqlite3.OperationalError("database is locked")
    err.sqlite_errorcode = code
    return err


class _Cursor:
    """A cursor whose first ``failures`` executions raise ``error``."""

    def __init__(self, failures: int, error: sqlite3.OperationalError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def execute(self, sql: str) -> _Cursor:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self

    def fetchall(self) -> list[Any]:
        return [("wal",)]


@pytest.mark.parametrize("code", [5, 261, 517])  # SQLITE_BUSY, _RECOVERY, _SNAPSHOT
def test_busy_is_retried(code: int) -> None:
    cursor = _Cursor(3, _busy(code))
    run_pragma(cursor, "PRAGMA journal_mode=WAL", busy_timeout_ms=5_000)
    assert cursor.calls == 4


def test_other_errors_are_not_retried() -> None:
    cursor = _Cursor(1, _busy(code=26))  # SQLITE_NOTADB
    with pytest.raises(sqlite3.OperationalError):
        run_pragma(cursor, "PRAGMA journal_mode=WAL", busy_timeout_ms=5_000)
    assert cursor.calls == 1


def test_busy_past_the_timeout_raises() -> None:
    cursor = _Cursor(10_000, _busy())
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        run_pragma(cursor, "PRAGMA journal_mode=WAL", busy_timeout_ms=30)
    assert 1 < cursor.calls < 100


def _open(path: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        engine = create_registry_engine(sa.make_url(f"sqlite:///{path}"))
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT name FROM sqlite_master").fetchall()
        with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        engine.dispose()
        results.put(None)
    except Exception as err:  # reported to the parent
        results.put(repr(err))


def test_processes_opening_a_new_registry_together(tmp_path: Path) -> None:
    # Before run_pragma, about 1 connection in 30 failed with "database is locked" here.
    ctx = multiprocessing.get_context("fork")
    failures: list[str] = []
    for round_ in range(25):
        path = str(tmp_path / f"r{round_}.sqlite3")
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(path, barrier, results)) for _ in range(6)]
        for p in procs:
            p.start()
        failures += [r for r in (results.get(timeout=60) for _ in procs) if r]
        for p in procs:
            p.join(timeout=60)
    assert failures == []
