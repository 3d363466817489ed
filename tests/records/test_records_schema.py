"""Tests of s3qbb.records.schema: daf_butler-compatible table layouts."""

from __future__ import annotations

import re
import sqlite3
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from s3qbb.errors import ConfigError
from s3qbb.records import sql
from s3qbb.records.schema import create_statements, make_schema


def test_records_table_matches_daf_butler() -> None:
    records = make_schema().records
    assert records.name == "file_datastore_records"
    assert [c.name for c in records.columns] == [
        "dataset_id",
        "path",
        "formatter",
        "storage_class",
        "component",
        "checksum",
        "file_size",
    ]
    assert [c.name for c in records.primary_key] == ["dataset_id", "component"]
    types = {c.name: str(c.type.compile(dialect=sa.dialects.sqlite.dialect())) for c in records.columns}
    assert types == {
        "dataset_id": "CHAR(32)",
        "path": "TEXT",
        "formatter": "TEXT",
        "storage_class": "TEXT",
        "component": "VARCHAR(32)",
        "checksum": "TEXT",  # no length bound: block-checksum strings may exceed daf_butler's 128
        "file_size": "BIGINT",
    }
    assert not records.c.path.nullable and not records.c.component.nullable
    assert records.c.checksum.nullable and records.c.file_size.nullable
    assert isinstance(records.c.file_size.type, sa.BigInteger)
    assert [list(i.columns.keys()) for i in records.indexes] == [["path"]]


def test_location_tables() -> None:
    schema = make_schema()
    assert [c.name for c in schema.location.primary_key] == ["datastore_name", "dataset_id"]
    # daf_butler's datastore bridge 0.2.1 reversed the trash table's key order.
    assert [c.name for c in schema.trash.primary_key] == ["dataset_id", "datastore_name"]
    for table in (schema.location, schema.trash):
        assert isinstance(table.c.datastore_name.type, sa.Text)
        assert not table.foreign_keys


GOLDEN = Path(__file__).parent / "golden" / "daf_butler_qbb_schema.sql"


def _normalise(statement: str) -> str:
    statement = re.sub(r"\bIF NOT EXISTS\b", "", statement)
    return " ".join(statement.split()).replace("( ", "(").replace(" )", ")")


def daf_butler_statements(text: str) -> set[str]:
    """Return the normalised statements of a ``;``-separated SQL text (comments dropped)."""
    lines = [line for line in text.splitlines() if not line.startswith("--")]
    return {_normalise(s) for s in "\n".join(lines).split(";") if s.strip()}


def test_ddl_is_daf_butlers() -> None:
    # The golden copy is what lsst-daf-butler's QuantumBackedButler writes into its SQLite file;
    # tests/compat/test_daf_butler.py compares with a live daf_butler where it is installed.
    ours = {_normalise(s) for s in create_statements()}
    theirs = daf_butler_statements(GOLDEN.read_text())
    assert theirs <= ours, sorted(theirs - ours)
    assert {s.split(" (")[0] for s in ours - theirs} == {"CREATE TABLE s3qbb_meta"}


@pytest.mark.parametrize("table", ["file_datastore_records", "my_records"])
def test_store_ddl_is_what_sqlalchemy_renders(table: str) -> None:
    # The store runs the plain-text DDL of s3qbb.records.sql (no SQLAlchemy on a job's path).
    assert sql.create_statements(table) == create_statements(table)


def test_component_length_is_checked() -> None:
    conn = sqlite3.connect(":memory:")
    for statement in create_statements():
        conn.execute(statement)
    row = "INSERT INTO file_datastore_records VALUES ('0' , 'p', 'f', 's', ?, NULL, 1)"
    conn.execute(row, ("c" * 32,))
    for bad in ("c" * 33, ""):
        with pytest.raises(sqlite3.IntegrityError, match="len_component"):
            conn.execute(row, (bad,))
    conn.execute("INSERT INTO file_datastore_records VALUES ('1', 'p', 'f', 's', 'c', ?, 1)", ("x" * 400,))


def test_uuid_stored_as_32_hex_chars_like_daf_butler_guid() -> None:
    conn = sqlite3.connect(":memory:")
    for statement in create_statements():
        conn.execute(statement)
    (ddl,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'file_datastore_records'").fetchone()
    assert "dataset_id CHAR(32) NOT NULL" in ddl
    engine = sa.create_engine("sqlite://", creator=lambda: conn)
    dataset_id = uuid.uuid4()
    row = {
        "dataset_id": dataset_id,
        "path": "p",
        "formatter": "f",
        "storage_class": "s",
        "component": "c",
        "checksum": None,
        "file_size": 1,
    }
    with engine.begin() as c:
        c.execute(make_schema().records.insert(), [row])
    assert conn.execute("SELECT dataset_id FROM file_datastore_records").fetchone() == (dataset_id.hex,)


def test_create_statements_are_idempotent_and_named() -> None:
    conn = sqlite3.connect(":memory:")
    for _ in range(2):
        for statement in create_statements("my_records"):
            conn.execute(statement)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert names == {"my_records", "dataset_location", "dataset_location_trash", "opaque_meta", "s3qbb_meta"}


@pytest.mark.parametrize("name", ["", "1x", "a-b", "x; DROP TABLE y", "dataset_location", "s3qbb_meta"])
def test_bad_table_names(name: str) -> None:
    with pytest.raises(ConfigError):
        make_schema(name)
