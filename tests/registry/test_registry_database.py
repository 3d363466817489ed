"""Tests of s3qbb.registry.database and Registry.from_url: URLs, schema versions, connection errors."""

from __future__ import annotations

import socket
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from registry_data import drop_namespace, skip_without_postgres

from s3qbb.errors import ConfigError, CredentialsError, RegistryConnectionError, RegistryError, S3qbbError
from s3qbb.registry import REGISTRY_SCHEMA_VERSION, Registry
from s3qbb.registry.database import is_transient_db_error, parse_registry_url, safe_url
from s3qbb.registry.schema import check_row, check_values, make_tables

PASSWORD = "s3cr3t-Pa55word"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- URLs ------------------------------------------------------------------------------


def test_bare_path_means_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = parse_registry_url("sub/reg.sqlite3")
    assert url.drivername == "sqlite"
    assert url.database == str(tmp_path / "sub" / "reg.sqlite3")
    assert parse_registry_url(tmp_path / "x.db").database == str(tmp_path / "x.db")


@pytest.mark.parametrize("text", ["postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"])
def test_postgres_urls_use_psycopg(text: str) -> None:
    url = parse_registry_url(text)
    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.host, url.database) == ("u", "h", "db")


def test_other_databases_and_garbage_are_refused_without_echoing_the_password() -> None:
    with pytest.raises(ConfigError, match="mysql") as info:
        parse_registry_url(f"mysql://user:{PASSWORD}@host/db")
    assert PASSWORD not in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_registry_url(f"postgresql://user:{PASSWORD}@host:notaport/db")
    assert PASSWORD not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(ConfigError, match="empty"):
        parse_registry_url("")


def test_safe_url_hides_password() -> None:
    url = parse_registry_url(f"postgresql://user:{PASSWORD}@db.example:5433/reg")
    assert safe_url(url) == "postgresql+psycopg://user:***@db.example:5433/reg"


def test_namespace_needs_postgres_and_an_identifier(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PostgreSQL"):
        Registry.from_url(tmp_path / "r.sqlite3", namespace="abc")
    with pytest.raises(ConfigError, match="identifier"):
        Registry.from_url("postgresql://u@127.0.0.1/db", namespace='x"; DROP TABLE y; --')


# --- schema ----------------------------------------------------------------------------


def test_schema_created_on_first_use_and_reopened(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "reg.sqlite3"
    with Registry.from_url(path) as reg:
        assert reg.dialect == "sqlite"
        assert reg.counts() == dict.fromkeys(reg.counts(), 0)
        assert set(reg.counts()) == {
            "dataset_type",
            "run",
            "dataset",
            "dataset_data_id",
            "datastore_record",
            "quantum",
            "quantum_dataset",
        }
    assert path.exists()
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT value FROM registry_meta WHERE key='schema_version'").fetchall() == [
            (REGISTRY_SCHEMA_VERSION,)
        ]
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        con.close()
    with Registry.from_url(f"sqlite:///{path}", create=False) as again:
        assert again.datasets() == []


def test_create_false_refuses_a_database_without_registry(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()  # an SQLite file, but no registry in it
    with pytest.raises(RegistryError, match="holds no s3qbb registry"):
        Registry.from_url(empty, create=False)


def test_create_false_refuses_a_missing_file_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "registry.sqlite3"
    with pytest.raises(RegistryError, match="does not exist; run `s3qbb ingest RUN_URI --registry URL`"):
        Registry.from_url(missing, create=False)
    assert not missing.parent.exists()


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    Registry.from_url(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE registry_meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(RegistryError, match="schema version '99'"):
        Registry.from_url(path)


def test_not_a_database_is_a_registry_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(RegistryError):
        Registry.from_url(path)


def test_unwritable_sqlite_location(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RegistryConnectionError, match="writable folder"):
        Registry.from_url(blocker / "sub" / "reg.sqlite3")


def test_concurrent_first_use_creates_schema_once(tmp_path: Path) -> None:
    path = tmp_path / "race.sqlite3"
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def open_it() -> None:
        try:
            barrier.wait()
            Registry.from_url(path).close()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM registry_meta").fetchone() == (1,)
    con.close()


def test_in_memory_registry() -> None:
    with Registry.from_url("sqlite://") as reg:
        assert reg.url == "sqlite://"
        assert reg.datasets() == []


def test_check_row_rejects_what_postgres_would() -> None:
    t = make_tables()
    assert check_row(t.run, {"name": "ok"}) is None
    assert "more than the 256" in str(check_row(t.run, {"name": "r" * 257}))
    assert "control" in str(check_row(t.run, {"name": "a\x00b"}))
    assert "64 bits" in str(check_row(t.record, {"file_size": 2**63}))
    assert check_row(t.record, {"file_size": 2**63 - 1}) is None
    assert check_row(t.quantum, {"error": "line one\nline two"}) is None
    assert "NUL" in str(check_row(t.quantum, {"error": "nul\x00"}))
    # The same checks of a row given as its values in column order.
    assert check_values(t.run, ("ok",)) is None
    assert "more than the 256" in str(check_values(t.run, ("r" * 257,)))
    assert "control" in str(check_values(t.run, ("a\x00b",)))
    assert "control" in str(check_values(t.run, ("a\nb",)))
    quantum: list[object] = [None] * len(t.quantum.columns)
    quantum[list(t.quantum.columns).index(t.quantum.c.error)] = "line one\nline two"
    assert check_values(t.quantum, quantum) is None
    quantum[list(t.quantum.columns).index(t.quantum.c.error)] = "nul\x00"
    assert "NUL" in str(check_values(t.quantum, quantum))
    record = ["a" * 32, "ds", "c", "p", "f", "s", None, 2**63]
    assert "64 bits" in str(check_values(t.record, record))
    assert check_values(t.record, [*record[:-1], 2**63 - 1]) is None


# --- connection errors ---------------------------------------------------------------------


def test_unreachable_server_names_host_not_password() -> None:
    port = free_port()
    url = f"postgresql+psycopg://someone:{PASSWORD}@127.0.0.1:{port}/reg"
    with pytest.raises(RegistryConnectionError) as info:
        Registry.from_url(url, connect_timeout=2)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "someone:***@" in message
    assert PASSWORD not in message
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, S3qbbError)
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.postgres
def test_wrong_credentials_name_host_not_password() -> None:
    url = skip_without_postgres()
    parsed = sa.make_url(url)
    bad = parsed.set(
        drivername="postgresql+psycopg", username=f"nobody_{uuid.uuid4().hex[:8]}", password=PASSWORD
    )
    with pytest.raises(CredentialsError) as info:
        Registry.from_url(bad)
    message = str(info.value)
    assert f"{parsed.host}:{parsed.port or 5432}" in message
    assert PASSWORD not in message and "***" in message
    assert isinstance(info.value, PermissionError)


@pytest.mark.postgres
def test_postgres_registry_repr_hides_password_and_namespaces_are_separate() -> None:
    url = skip_without_postgres()
    with_password = sa.make_url(url).set(drivername="postgresql+psycopg", password=PASSWORD)
    a, b = (f"s3qbb_test_{uuid.uuid4().hex[:12]}" for _ in range(2))
    try:
        with (
            Registry.from_url(with_password, namespace=a) as reg_a,
            Registry.from_url(url, namespace=b) as reg_b,
        ):
            assert PASSWORD not in repr(reg_a) and "***" in repr(reg_a)
            assert reg_a.dialect == "postgresql"
            with reg_a.engine.begin() as conn:
                conn.execute(make_tables().run.insert().values(name="only-in-a"))
            assert reg_a.counts()["run"] == 1
            assert reg_b.counts()["run"] == 0
    finally:
        drop_namespace(url, a)
        drop_namespace(url, b)


# --- transient errors -----------------------------------------------------------------------


class _OrigError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("driver error")
        self.sqlstate = sqlstate


def _dbapi(cls: Any, orig: BaseException, invalidated: bool = False) -> sa.exc.DBAPIError:
    err: sa.exc.DBAPIError = cls("INSERT ...", {}, orig, connection_invalidated=invalidated)
    return err


def test_transient_classification() -> None:
    assert is_transient_db_error(_dbapi(sa.exc.OperationalError, _OrigError("40P01")))
    assert is_transient_db_error(_dbapi(sa.exc.OperationalError, _OrigError("40001")))
    assert is_transient_db_error(_dbapi(sa.exc.OperationalError, _OrigError(None), invalidated=True))
    assert not is_transient_db_error(_dbapi(sa.exc.IntegrityError, _OrigError("23505")))
    assert not is_transient_db_error(ValueError("no"))
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorname = "SQLITE_BUSY"
    assert is_transient_db_error(_dbapi(sa.exc.OperationalError, locked))
