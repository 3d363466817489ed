"""Check a quantum's SQLite records file against its provenance before ingest trusts either.

The records file (``<run>/_records/<quantum id>.sqlite3``) is what daf_butler's
tools read; the provenance file carries the same datastore records as JSON.
Ingest inserts the provenance's copy, so damage to the SQLite file would go
unnoticed unless it is read: `check_records_file` opens it read-only, checks
the schema, runs ``PRAGMA quick_check`` and compares its rows with the
provenance (same dataset IDs, components, paths, sizes and checksums).
"""

from __future__ import annotations

__all__ = ["RecordsFileError", "check_records_file"]

import contextlib
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.records import NULL_COMPONENT
from ..errors import ConfigError, RecordDataError
from ..records.names import DATASET_LOCATION_TABLE, META_TABLE, OPAQUE_META_TABLE, check_records_table_name

if TYPE_CHECKING:
    from ..provenance.model import QuantumProvenanceData

_COLUMNS = ("dataset_id", "path", "formatter", "storage_class", "component", "checksum", "file_size")
_SHOWN = 3
"""Differences named in a message."""

_Row = tuple[str | None, str | None, int | None]
"""``(path, checksum, file_size)`` of one record."""


class RecordsFileError(RecordDataError):
    """A quantum's records file is damaged or disagrees with its provenance."""


_IN_MEMORY_MAX_BYTES = 64 * 1024**2
"""Largest records file read from memory (`sqlite3.Connection.deserialize`); larger ones from a file."""

_HEADER_VERSIONS = slice(18, 20)
"""Bytes of the SQLite header holding the file format write and read versions (2 and 2: WAL mode)."""


@contextlib.contextmanager
def _read_only(data: bytes) -> Iterator[sqlite3.Connection]:
    """Open a copy of a downloaded SQLite database that nothing can write.

    Up to `_IN_MEMORY_MAX_BYTES`, SQLite reads the bytes from memory
    (``sqlite3_deserialize``: no temporary file to write, open and delete,
    which cost more than the checks themselves), with ``PRAGMA query_only``;
    beyond, or where SQLite lacks ``deserialize``, a temporary file opened
    read-only and immutable. Both read the database file alone: a WAL flag
    in its header is cleared in the in-memory copy, as ``immutable`` ignores
    it (a WAL file is never downloaded).
    """
    if len(data) <= _IN_MEMORY_MAX_BYTES and hasattr(sqlite3.Connection, "deserialize"):
        conn = sqlite3.connect(":memory:")
        try:
            if data:  # an empty file is an empty database, as SQLite opens one (deserialize refuses b"")
                if data[_HEADER_VERSIONS] == b"\x02\x02":
                    data = b"".join((data[:18], b"\x01\x01", data[20:]))
                conn.deserialize(data)
            conn.execute("PRAGMA query_only = ON")
            yield conn
        finally:
            conn.close()
        return
    with tempfile.TemporaryDirectory(prefix="s3qbb-check-") as tmp:
        path = Path(tmp) / "records.sqlite3"
        path.write_bytes(data)
        # Read-only and immutable: nothing in the file (a hot journal, a WAL flag) makes SQLite write.
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            yield conn
        finally:
            conn.close()


def _file_rows(conn: sqlite3.Connection) -> tuple[str, dict[tuple[uuid.UUID, str], _Row]]:
    """Return the datastore name and the located records of a records database."""
    problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise RecordsFileError(
            f"SQLite's quick_check reports damage: {'; '.join(map(str, problems[:_SHOWN]))}"
        )
    meta = dict(conn.execute(f'SELECT "key", value FROM {META_TABLE}').fetchall())
    name = meta.get("datastore_name")
    if not isinstance(name, str) or not name:
        raise RecordsFileError(f"its {META_TABLE} table names no datastore")
    tables = [str(row[0]) for row in conn.execute(f"SELECT table_name FROM {OPAQUE_META_TABLE}")]
    if len(tables) != 1:
        raise RecordsFileError(f"{OPAQUE_META_TABLE} names {len(tables)} records tables, not one")
    try:
        table = check_records_table_name(tables[0])
    except ConfigError as err:
        raise RecordsFileError(f"its records table name is not allowed: {err}") from None
    columns = {str(row[1]) for row in conn.execute(f'PRAGMA table_info("{table}")')}
    missing = [c for c in _COLUMNS if c not in columns]
    if missing:
        raise RecordsFileError(f"records table {table!r} lacks the columns {missing}")
    rows: dict[tuple[uuid.UUID, str], _Row] = {}
    query = (
        f'SELECT r.dataset_id, r.component, r.path, r.checksum, r.file_size FROM "{table}" r '
        f"JOIN {DATASET_LOCATION_TABLE} l ON l.dataset_id = r.dataset_id AND l.datastore_name = ?"
    )
    for dataset_id, component, path, checksum, size in conn.execute(query, (name,)):
        try:
            key = (uuid.UUID(hex=str(dataset_id)), str(component or NULL_COMPONENT))
        except ValueError as err:
            raise RecordsFileError(f"records table {table!r} holds dataset ID {dataset_id!r}") from err
        rows[key] = (path, checksum, size)
    return name, rows


def _provenance_rows(provenance: QuantumProvenanceData, datastore: str) -> dict[tuple[uuid.UUID, str], _Row]:
    rows: dict[tuple[uuid.UUID, str], _Row] = {}
    simple = provenance.datastore_records.get(datastore)
    if simple is None:
        return rows
    for by_dataset in simple.records.values():
        for id_hex, by_table in by_dataset.items():
            for stored in by_table.values():
                for rec in stored:
                    rows[uuid.UUID(id_hex), rec.component or NULL_COMPONENT] = (
                        rec.path,
                        rec.checksum,
                        rec.file_size,
                    )
    return rows


def _describe(key: tuple[uuid.UUID, str]) -> str:
    dataset_id, component = key
    return str(dataset_id) if component == NULL_COMPONENT else f"{dataset_id} ({component})"


def check_records_file(data: bytes, provenance: QuantumProvenanceData) -> None:
    """Check a records file and its agreement with the quantum's provenance.

    Parameters
    ----------
    data : `bytes`
        Content of ``<quantum id>.sqlite3``.
    provenance : `~s3qbb.provenance.model.QuantumProvenanceData`
        The quantum's validated provenance.

    Raises
    ------
    RecordsFileError
        Raised if the file is not a SQLite database, fails ``PRAGMA
        quick_check``, lacks the records schema, or disagrees with the
        provenance: a record of the provenance missing or different in the
        file (path, checksum, size), or a record of one of the quantum's
        outputs in the file that the provenance does not hold. Records of
        inputs the file holds besides are allowed (a butler keeps those too).
    """
    try:
        with _read_only(data) as conn:
            datastore, found = _file_rows(conn)
    except sqlite3.DatabaseError as err:
        raise RecordsFileError(f"it is not a readable SQLite records database ({err})") from None
    expected = _provenance_rows(provenance, datastore)
    differences: list[str] = []
    for key, row in sorted(expected.items(), key=lambda kv: (kv[0][0].int, kv[0][1])):
        got = found.get(key)
        if got is None:
            differences.append(f"{_describe(key)} is in the provenance but not in the records file")
        elif got != row:
            differences.append(
                f"{_describe(key)} has {_fmt(got)} in the records file, {_fmt(row)} in provenance"
            )
    outputs = provenance.predicted_outputs
    for key in sorted(found.keys() - expected.keys(), key=lambda k: (k[0].int, k[1])):
        if key[0] in outputs:
            differences.append(f"output {_describe(key)} is in the records file but not in the provenance")
    if differences:
        more = f" (and {len(differences) - _SHOWN} more)" if len(differences) > _SHOWN else ""
        raise RecordsFileError(
            f"it disagrees with the provenance file for datastore {datastore!r}: "
            f"{'; '.join(differences[:_SHOWN])}{more}"
        )


def _fmt(row: _Row) -> str:
    path, checksum, size = row
    return f"path {path!r}, checksum {checksum!r}, size {size!r}"
