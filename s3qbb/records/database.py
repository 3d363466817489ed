"""One SQLite database of records, in memory or in a file: opening, one cursor, closing, copying.

`RecordsDatabase` is the plumbing under `s3qbb.records.store.SqliteRecordsStore`:
nothing is opened until first use, calls are serialised by one lock (an
in-memory database is a single connection), SQLite errors become s3qbb's
(a lock held too long is a `TransientStorageError`), and
:meth:`RecordsDatabase.flush_to_file` writes the whole database to one file
any SQLite client reads.
"""

from __future__ import annotations

__all__ = ["RecordsDatabase"]

import abc
import contextlib
import errno
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Self

from ..errors import RecordExistsError, RecordsStoreError, S3qbbError, TransientStorageError
from .sql import connect, writing

if TYPE_CHECKING:
    from types import TracebackType

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14


def _advice(err: sqlite3.Error | OSError, where: str) -> str:
    """Say what to do about an error writing the SQLite file ``where`` (a full disk, a missing folder)."""
    code = getattr(err, "sqlite_errorcode", None)
    primary = code & 0xFF if code is not None else None
    if primary == _SQLITE_FULL or getattr(err, "errno", None) == errno.ENOSPC:
        return (
            f"the file system holding {where} is full: free space there, or write the records "
            "elsewhere (--records-file PATH, or TMPDIR for the default in-memory records)"
        )
    if primary in (_SQLITE_CANTOPEN, _SQLITE_READONLY) or isinstance(err, OSError):
        return (
            f"check that the folder of {where} exists and is writable, or write the records "
            "elsewhere (--records-file PATH, or TMPDIR for the default in-memory records)"
        )
    return "check that the file is a writable SQLite database"


class RecordsDatabase(abc.ABC):
    """A lazily opened SQLite database, serialised by a lock; subclasses create the schema.

    Parameters
    ----------
    filename : `str` or `os.PathLike`
        SQLite file, created if missing, or ``":memory:"``.
    busy_timeout : `float`
        Seconds to wait for another process's lock on a file before failing.
    owner : `str`
        What the database belongs to, for error messages.
    """

    def __init__(self, filename: str | os.PathLike[str], *, busy_timeout: float, owner: str) -> None:
        self._filename = os.fspath(filename)
        self._busy_timeout_ms = max(0, int(busy_timeout * 1000))
        self._owner = owner
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._cur: sqlite3.Cursor | None = None  # the hot paths' one cursor (used under the lock)
        self._closed = False

    @abc.abstractmethod
    def _init_schema(self, conn: sqlite3.Connection) -> None:
        """Create the schema if the database has none (called once, in a write transaction)."""

    # --- lifecycle -----------------------------------------------------------

    @property
    def in_memory(self) -> bool:
        """Whether the database lives in memory (`bool`)."""
        return self._filename == ":memory:"

    def __enter__(self) -> Self:
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
            self._cur = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        # Callers hold self._lock.
        if self._conn is not None:
            return self._conn
        if self._closed:
            raise RecordsStoreError(
                f"Records store {self._filename!r} of {self._owner} is closed; create a new store."
            )
        if not self.in_memory:  # a records file in a folder not made yet (``--records-file out/q.sqlite3``)
            try:
                Path(self._filename).parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise RecordsStoreError(
                    f"Cannot create the folder of records store {self._filename!r}: {err}; "
                    f"{_advice(err, repr(self._filename))}."
                ) from err
        with self._translate("open the database"):
            conn = connect(self._filename, busy_timeout_ms=self._busy_timeout_ms)
        try:
            with self._translate("create the schema"), writing(conn):
                self._init_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _cursor(self) -> sqlite3.Cursor:
        # Callers hold self._lock. One cursor serves the single-dataset statements (no cursor made
        # per statement); each of its queries is read to the end, so no statement stays active.
        cur = self._cur
        if cur is None:
            cur = self._cur = self._connection().cursor()
        return cur

    @contextlib.contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            raise self._error(action, err) from err

    def _error(self, action: str, err: sqlite3.Error) -> S3qbbError:
        """Return the s3qbb error for a SQLite error raised while doing ``action``."""
        if isinstance(err, sqlite3.IntegrityError):
            return RecordExistsError(
                f"Cannot {action} in records store {self._filename!r}: a record with the same dataset ID "
                "and component already exists."
            )
        code = getattr(err, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return TransientStorageError(
                f"Cannot {action} in records store {self._filename!r}: the database stayed locked "
                f"for {self._busy_timeout_ms} ms; retry, or stop the other process using it."
            )
        return RecordsStoreError(
            f"Cannot {action} in records store {self._filename!r}: {err}; "
            f"{_advice(err, repr(self._filename))}."
        )

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
            source = self._connection()
            if not self.in_memory and target.exists() and target.samefile(self._filename):
                return target
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
                os.close(fd)
            except OSError as err:
                raise self._copy_error(target, err) from err
            try:
                try:
                    dest = sqlite3.connect(tmp)
                    try:
                        # Online backup API: a consistent copy, page by page, whatever the journal mode.
                        source.backup(dest)
                    finally:
                        dest.close()
                    with open(tmp, "rb+") as handle:
                        os.fsync(handle.fileno())
                    os.replace(tmp, target)
                except (sqlite3.Error, OSError) as err:
                    raise self._copy_error(target, err) from err
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        return target

    def _copy_error(self, target: Path, err: sqlite3.Error | OSError) -> RecordsStoreError:
        """Return the error of a copy to ``target`` that failed (it names the file being written)."""
        return RecordsStoreError(
            f"Cannot copy records store {self._filename!r} of {self._owner} to {str(target)!r}: {err}; "
            f"{_advice(err, repr(str(target)))}."
        )
