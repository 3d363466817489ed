"""SQLite connection and transaction setup shared by the records store and the registry.

Both databases need the same recipe (SQLAlchemy's documented one for pysqlite):
pysqlite's own lazy transaction handling is turned off, every connection gets
foreign keys and a busy timeout, and transactions begin with ``BEGIN
IMMEDIATE`` when the connection carries a write option, so a writer takes the
write lock up front instead of failing with ``SQLITE_BUSY`` when a deferred
transaction upgrades from reading to writing. What differs is the journal:
the records file is uploaded as one object (rollback journal), the registry
serves readers while an ingest writes (WAL).
"""

from __future__ import annotations

__all__ = ["install_sqlite_listeners", "run_pragma"]

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

_SQLITE_BUSY = 5
"""Primary result code of "database is locked" (extended codes keep it in their low byte)."""


def run_pragma(cursor: Any, pragma: str, *, busy_timeout_ms: int) -> None:
    """Run a pragma, retrying while SQLite answers ``SQLITE_BUSY`` for up to ``busy_timeout_ms``.

    ``PRAGMA journal_mode=WAL`` on a database that other processes are opening at the same
    moment can fail with ``SQLITE_BUSY`` at once, without calling the busy handler (seen in
    about 1 of 30 connections when 6 processes open a new file together), so the busy timeout
    alone does not cover it.

    Parameters
    ----------
    cursor : `sqlite3.Cursor`
        A DB-API cursor of the connection.
    pragma : `str`
        The statement.
    busy_timeout_ms : `int`
        How long to keep trying.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.001
    while True:
        try:
            cursor.execute(pragma).fetchall()
            return
        except sqlite3.OperationalError as err:
            code = getattr(err, "sqlite_errorcode", None)
            if code is None or code & 0xFF != _SQLITE_BUSY or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def install_sqlite_listeners(
    engine: sa.Engine, *, busy_timeout_ms: int, write_option: str, pragmas: Sequence[str] = ()
) -> sa.Engine:
    """Set up every connection of a SQLite engine and decide how its transactions begin.

    Parameters
    ----------
    engine : `sqlalchemy.Engine`
        A pysqlite engine.
    busy_timeout_ms : `int`
        Milliseconds to wait for another process's lock.
    write_option : `str`
        Execution option that marks a connection as a writer: its
        transactions begin with ``BEGIN IMMEDIATE`` (``BEGIN`` otherwise, so
        multi-statement reads see one snapshot).
    pragmas : `~collections.abc.Sequence` [`str`], optional
        Further statements run on each new connection (journal mode ...).

    Returns
    -------
    engine : `sqlalchemy.Engine`
        The same engine.
    """

    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Turn off pysqlite's own transaction handling (it BEGINs lazily, only before DML) so the
        # begin listener below decides when and how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # SQLite enforces declared foreign keys only when asked, per connection.
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
            for pragma in pragmas:
                run_pragma(cursor, pragma, busy_timeout_ms=busy_timeout_ms)
        finally:
            cursor.close()

    def on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(
            "BEGIN IMMEDIATE" if conn.get_execution_options().get(write_option, False) else "BEGIN"
        )

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    return engine
