"""SQLAlchemy Core schema of a datastore records database.

The records store itself runs on the standard library's `sqlite3`
(`s3qbb.records.sql`, whose DDL is the text rendered here: a test compares
them); this module describes the same tables for SQLAlchemy users and tools.

The tables mirror those of a daf_butler ``QuantumBackedButler`` SQLite file so
daf_butler's tools can read ours; the ``CREATE`` statements are those
daf_butler (v30) issues for its SQLite file, checked by a test against a
golden copy and, where daf_butler is installed, against daf_butler itself:

``file_datastore_records`` (name configurable)
    One row per stored artifact; primary key ``(dataset_id, component)``,
    ``component`` holding ``"__NULL_STRING__"`` when the dataset is not a
    component. Column names and SQLite types are daf_butler's: ``TEXT`` for
    ``path``, ``formatter``, ``storage_class`` and ``checksum`` (daf_butler's
    declared lengths, 256/128/64/128, are not enforced by SQLite; s3qbb's
    checksum strings may be longer), ``VARCHAR(32)`` and daf_butler's length
    ``CHECK`` for ``component``, and daf_butler's index name.
``dataset_location``
    ``(datastore_name, dataset_id)``: the dataset is stored in that datastore.
``dataset_location_trash``
    Same columns; datasets removed from the datastore whose artifacts may not
    be deleted yet. Primary key ``(dataset_id, datastore_name)``, the order of
    daf_butler's datastore bridge schema 0.2.1.
``opaque_meta``
    Names of the opaque (records) tables, as daf_butler's
    ``ByNameOpaqueTableStorageManager`` keeps them.
``s3qbb_meta``
    Key/value pairs: ``records_schema_version`` and ``datastore_name``.

Dataset IDs use SQLAlchemy's `~sqlalchemy.types.Uuid`, which SQLite stores as
``CHAR(32)`` lower-case hex without dashes (native ``UUID`` on PostgreSQL):
byte for byte what daf_butler's ``GUID`` type writes.
"""

from __future__ import annotations

__all__ = [
    "DATASET_LOCATION_TABLE",
    "DATASET_LOCATION_TRASH_TABLE",
    "DEFAULT_RECORDS_TABLE",
    "META_TABLE",
    "OPAQUE_META_TABLE",
    "RECORDS_SCHEMA_VERSION",
    "RecordsSchema",
    "check_records_table_name",
    "create_statements",
    "make_schema",
]

import dataclasses
import functools

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from .names import (
    DATASET_LOCATION_TABLE,
    DATASET_LOCATION_TRASH_TABLE,
    DEFAULT_RECORDS_TABLE,
    META_TABLE,
    OPAQUE_META_TABLE,
    RECORDS_SCHEMA_VERSION,
    check_records_table_name,
)


@dataclasses.dataclass(frozen=True, slots=True)
class RecordsSchema:
    """The tables of one records database.

    Parameters
    ----------
    metadata : `sqlalchemy.MetaData`
        Metadata holding every table below.
    records : `sqlalchemy.Table`
        The records table.
    location : `sqlalchemy.Table`
        ``dataset_location``.
    trash : `sqlalchemy.Table`
        ``dataset_location_trash``.
    opaque_meta : `sqlalchemy.Table`
        ``opaque_meta``.
    meta : `sqlalchemy.Table`
        ``s3qbb_meta``.
    """

    metadata: sa.MetaData
    records: sa.Table
    location: sa.Table
    trash: sa.Table
    opaque_meta: sa.Table
    meta: sa.Table


def _location_table(name: str, metadata: sa.MetaData, *, trash: bool) -> sa.Table:
    datastore_name = sa.Column("datastore_name", sa.Text(), nullable=False)
    dataset_id = sa.Column("dataset_id", sa.Uuid(), nullable=False)
    if trash:  # daf_butler's datastore bridge 0.2.1 put the ID first in the trash table
        return sa.Table(
            name,
            metadata,
            dataset_id,
            datastore_name,
            sa.PrimaryKeyConstraint("dataset_id", "datastore_name"),
        )
    return sa.Table(
        name, metadata, datastore_name, dataset_id, sa.PrimaryKeyConstraint("datastore_name", "dataset_id")
    )


@functools.lru_cache(maxsize=16)
def make_schema(records_table: str = DEFAULT_RECORDS_TABLE) -> RecordsSchema:
    """Build the schema of a records database.

    Parameters
    ----------
    records_table : `str`, optional
        Name of the records table.

    Returns
    -------
    schema : `RecordsSchema`
        Unbound table definitions, shared by every caller asking for the
        same table name: do not modify them.

    Raises
    ------
    ConfigError
        Raised if ``records_table`` is not an identifier or names another table
        of the schema.
    """
    check_records_table_name(records_table)
    metadata = sa.MetaData()
    records = sa.Table(
        records_table,
        metadata,
        sa.Column("dataset_id", sa.Uuid(), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("formatter", sa.Text(), nullable=False),
        sa.Column("storage_class", sa.Text(), nullable=False),
        sa.Column("component", sa.String(32), primary_key=True),
        sa.Column("checksum", sa.Text(), nullable=True),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
        # daf_butler's SQLite backend enforces the declared length of key strings with a CHECK.
        sa.CheckConstraint(
            'length("component")<=32 AND length("component")>=1', name=f"{records_table}_len_component"
        ),
        sa.Index(f"{records_table}_idx_path", "path"),
    )
    location = _location_table(DATASET_LOCATION_TABLE, metadata, trash=False)
    trash = _location_table(DATASET_LOCATION_TRASH_TABLE, metadata, trash=True)
    opaque_meta = sa.Table(
        OPAQUE_META_TABLE,
        metadata,
        sa.Column("table_name", sa.Text(), primary_key=True),
    )
    meta = sa.Table(
        META_TABLE,
        metadata,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    return RecordsSchema(
        metadata=metadata, records=records, location=location, trash=trash, opaque_meta=opaque_meta, meta=meta
    )


@functools.lru_cache(maxsize=16)
def create_statements(records_table: str = DEFAULT_RECORDS_TABLE) -> tuple[str, ...]:
    """Return the SQLite DDL SQLAlchemy renders for the schema, each statement ``IF NOT EXISTS``.

    Parameters
    ----------
    records_table : `str`, optional
        Name of the records table.

    Returns
    -------
    statements : `tuple` [`str`, ...]
        ``CREATE TABLE`` and ``CREATE INDEX`` statements, rendered once per
        table name so that opening a store does not compile DDL again.
    """
    schema = make_schema(records_table)
    dialect = sqlite.dialect()
    tables = schema.metadata.sorted_tables
    statements = [str(sa.schema.CreateTable(t, if_not_exists=True).compile(dialect=dialect)) for t in tables]
    statements += [
        str(sa.schema.CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
        for t in tables
        for index in sorted(t.indexes, key=lambda i: str(i.name))
    ]
    return tuple(statement.strip() for statement in statements)
