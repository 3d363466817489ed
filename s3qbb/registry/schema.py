"""SQLAlchemy Core schema of the central registry, and its versioned creation.

Tables (all created on first use, ``IF NOT EXISTS``):

``registry_meta``
    Key/value pairs; ``schema_version`` is `REGISTRY_SCHEMA_VERSION`.
``dataset_type``
    ``name`` (primary key), ``storage_class``, ``dimensions`` (JSON list).
``run``
    ``name`` (primary key).
``dataset``
    ``id`` (UUID, primary key), ``dataset_type``, ``run``, ``data_id``
    (canonical JSON object). Type, run and data ID are `None` when no file
    of the ingested quanta described the dataset (see :mod:`.ingest`).
``dataset_data_id``
    One row per dimension of a dataset's data ID, indexed on
    ``(dimension, value)`` so data ID filters use an index.
``datastore_record``
    The columns of the per-quantum ``file_datastore_records`` table plus
    ``datastore_name``; primary key ``(dataset_id, datastore_name, component)``.
``quantum``
    ``id``, ``run``, ``task_label``, ``task_name``, ``status``, times,
    ``host``, error, the key of the provenance file it came from, the
    ``attempt`` whose outputs the registry holds (a sortable key, see
    :mod:`.attempts`) and ``files_tag``, a digest of the listed ETags of the
    files it was ingested from (an unchanged quantum is skipped without a
    download).
``quantum_dataset``
    Provenance edges ``(quantum_id, dataset_id, role)``, the primary key, with
    ``role`` one of `DATASET_ROLES`; indexed on ``(dataset_id, role)`` to find
    the quantum that wrote a dataset.

UUIDs use `sqlalchemy.types.Uuid` (native on PostgreSQL, 32 hex digits on
SQLite). Every string column has a length; ingest checks values against it
(`check_row`, `check_values`) so a hostile file fails alone instead of failing a batch.
"""

from __future__ import annotations

__all__ = [
    "DATASET_ROLES",
    "META_TABLE",
    "REGISTRY_SCHEMA_VERSION",
    "UPGRADES",
    "DatasetRole",
    "RegistryTables",
    "check_row",
    "check_values",
    "make_tables",
]

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, get_args

import sqlalchemy as sa

from ..core.text import MAX_DATA_ID_CHARS, MAX_TASK_LABEL_CHARS, MAX_TASK_NAME_CHARS, MAX_VALUE_CHARS

REGISTRY_SCHEMA_VERSION: Final = "2"
"""Version of this schema, stored under ``schema_version`` in ``registry_meta``.

Version 2 added ``quantum.attempt`` and ``quantum.files_tag``; a version 1
registry is upgraded in place when opened (see
`~s3qbb.registry.database.ensure_schema`).
"""

UPGRADES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "1": (("quantum", "attempt VARCHAR(64)"), ("quantum", "files_tag VARCHAR(64)")),
}
"""Columns added by each upgrade, by the version upgraded from: ``(table, column definition)``."""

META_TABLE: Final = "registry_meta"

DatasetRole = Literal[
    "predicted_input", "available_input", "actual_input", "predicted_output", "actual_output"
]
"""Role of a dataset for a quantum; the names of the `QuantumProvenanceData` ID sets, singular."""

DATASET_ROLES: tuple[DatasetRole, ...] = get_args(DatasetRole)
"""Every role, inputs first."""


@dataclasses.dataclass(frozen=True, slots=True)
class RegistryTables:
    """The tables of a registry (unbound definitions; see the module docstring)."""

    metadata: sa.MetaData
    meta: sa.Table
    dataset_type: sa.Table
    run: sa.Table
    dataset: sa.Table
    data_id: sa.Table
    record: sa.Table
    quantum: sa.Table
    edge: sa.Table

    @property
    def insert_order(self) -> tuple[sa.Table, ...]:
        """Tables in the order ingest writes them (referenced tables first).

        Every writer takes row locks table by table in this order and, within
        a table, in primary-key order, so concurrent writers cannot wait on
        each other in a cycle (no deadlock on PostgreSQL).
        """
        return (self.dataset_type, self.run, self.dataset, self.data_id, self.record, self.quantum, self.edge)


@functools.cache
def make_tables() -> RegistryTables:
    """Return the registry tables.

    Returns
    -------
    tables : `RegistryTables`
        Shared, unbound definitions without a schema name (a PostgreSQL
        schema is chosen per engine with ``schema_translate_map``): do not
        modify them.
    """
    md = sa.MetaData()
    meta = sa.Table(
        META_TABLE,
        md,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    dataset_type = sa.Table(
        "dataset_type",
        md,
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("storage_class", sa.String(64), nullable=True),
        sa.Column("dimensions", sa.String(1024), nullable=True),
    )
    run = sa.Table("run", md, sa.Column("name", sa.String(256), primary_key=True))
    dataset = sa.Table(
        "dataset",
        md,
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("dataset_type", sa.String(128), sa.ForeignKey("dataset_type.name"), nullable=True),
        sa.Column("run", sa.String(256), sa.ForeignKey("run.name"), nullable=True),
        sa.Column("data_id", sa.String(MAX_DATA_ID_CHARS), nullable=True),
        sa.Index("dataset_run_type_idx", "run", "dataset_type"),
        sa.Index("dataset_type_idx", "dataset_type"),
    )
    data_id = sa.Table(
        "dataset_data_id",
        md,
        sa.Column("dataset_id", sa.Uuid(), sa.ForeignKey("dataset.id"), primary_key=True),
        sa.Column("dimension", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(MAX_VALUE_CHARS), nullable=False),
        sa.Index("dataset_data_id_value_idx", "dimension", "value"),
    )
    record = sa.Table(
        "datastore_record",
        md,
        sa.Column("dataset_id", sa.Uuid(), sa.ForeignKey("dataset.id"), primary_key=True),
        sa.Column("datastore_name", sa.String(256), primary_key=True),
        sa.Column("component", sa.String(32), primary_key=True),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("formatter", sa.String(128), nullable=False),
        sa.Column("storage_class", sa.String(64), nullable=False),
        sa.Column("checksum", sa.String(128), nullable=True),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
    )
    quantum = sa.Table(
        "quantum",
        md,
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("run", sa.String(256), sa.ForeignKey("run.name"), nullable=True),
        sa.Column("task_label", sa.String(MAX_TASK_LABEL_CHARS), nullable=True),
        sa.Column("task_name", sa.String(MAX_TASK_NAME_CHARS), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("host", sa.String(256), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("source", sa.String(2048), nullable=True),
        sa.Column("attempt", sa.String(64), nullable=True),
        sa.Column("files_tag", sa.String(64), nullable=True),
        sa.Index("quantum_run_idx", "run"),
        sa.Index("quantum_task_label_idx", "task_label"),
    )
    edge = sa.Table(
        "quantum_dataset",
        md,
        sa.Column("quantum_id", sa.Uuid(), sa.ForeignKey("quantum.id"), primary_key=True),
        sa.Column("dataset_id", sa.Uuid(), sa.ForeignKey("dataset.id"), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Index("quantum_dataset_dataset_idx", "dataset_id", "role"),
    )
    return RegistryTables(md, meta, dataset_type, run, dataset, data_id, record, quantum, edge)


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_INT64 = 2**63


@functools.cache
def _limits(table: sa.Table) -> tuple[tuple[int, str, int | None], ...]:
    """Return the checked columns (index, name): strings with their length (`None`: no limit), integers -1."""
    out: list[tuple[int, str, int | None]] = []
    for index, column in enumerate(table.columns):
        if isinstance(column.type, sa.String):
            out.append((index, column.name, column.type.length))
        elif isinstance(column.type, sa.Integer):
            out.append((index, column.name, -1))
    return tuple(out)


def _problem(table: sa.Table, name: str, limit: int | None, value: Any) -> str | None:
    if isinstance(value, str):
        if limit is not None and limit >= 0 and len(value) > limit:
            return f"{table.name}.{name} is {len(value)} characters long, more than the {limit} allowed"
        if name != "error" and _CONTROL_RE.search(value):
            return f"{table.name}.{name} {value[:80]!r} contains NUL or control characters"
        if "\x00" in value:
            return f"{table.name}.{name} contains a NUL character"
    elif isinstance(value, int) and limit == -1 and not -_INT64 <= value < _INT64:
        return f"{table.name}.{name} value {value} does not fit in 64 bits"
    return None


def check_row(table: sa.Table, row: Mapping[str, Any]) -> str | None:
    """Check that a row's values fit a table's columns on every supported database.

    Parameters
    ----------
    table : `sqlalchemy.Table`
        One of the registry tables.
    row : `~collections.abc.Mapping` [`str`, `typing.Any`]
        Column values.

    Returns
    -------
    problem : `str` or `None`
        What does not fit, or `None` if the row fits: strings longer than
        their column or holding NUL or control characters (PostgreSQL refuses
        both where SQLite keeps them), integers outside 64 bits. Checking
        first gives both databases the same behaviour and lets ingest report
        the one file at fault instead of failing a batch.
    """
    for _, name, limit in _limits(table):
        value = row.get(name)
        if value is not None:
            problem = _problem(table, name, limit, value)
            if problem is not None:
                return problem
    return None


def check_values(table: sa.Table, values: Sequence[Any]) -> str | None:
    """Check a row given as its column values in column order; see `check_row`.

    Parameters
    ----------
    table : `sqlalchemy.Table`
        One of the registry tables.
    values : `~collections.abc.Sequence` [`typing.Any`]
        The value of every column, in the table's column order.

    Returns
    -------
    problem : `str` or `None`
        What does not fit, or `None` if the row fits.
    """
    for index, name, limit in _limits(table):
        value = values[index]
        if value is None:
            continue
        if (  # The common case, a fitting string, without a call (ingest checks every row it builds).
            value.__class__ is str
            and (limit is None or len(value) <= limit)
            and ("\x00" not in value if name == "error" else _CONTROL_RE.search(value) is None)
        ):
            continue
        problem = _problem(table, name, limit, value)
        if problem is not None:
            return problem
    return None
