"""tests/pg_cluster.py: the PostgreSQL of the ``postgres`` tests is found or started without settings."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pg_cluster
import pytest

psycopg = pytest.importorskip("psycopg")


def test_explicit_url_is_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pg_cluster.URL_ENV, "postgresql+psycopg://someone@db.invalid:1/x")
    assert pg_cluster._resolve() == ("postgresql+psycopg://someone@db.invalid:1/x", "")


def test_throwaway_cluster_starts_serves_and_stops() -> None:
    binaries = pg_cluster.find_binaries()
    if binaries is None:
        if os.environ.get(pg_cluster.REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail("no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin")
        pytest.skip("no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin")
    # Not tmp_path: as root the server runs as 'postgres', which cannot enter pytest's 0700 folders.
    folder = tempfile.mkdtemp(prefix="s3qbb-test-pg-")
    try:
        url = pg_cluster.start_cluster(Path(folder), binaries)
        assert pg_cluster.start_cluster(Path(folder), binaries) == url  # once per folder
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        assert port != 5432 and url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="test") as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("test",)
    finally:
        pg_cluster.cleanup(folder)
    assert not Path(folder).exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="test", connect_timeout=2)


def test_without_a_server_on_the_default_port_a_cluster_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    if pg_cluster.find_binaries() is None:
        pytest.skip("no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin")
    monkeypatch.delenv(pg_cluster.URL_ENV, raising=False)
    monkeypatch.setattr(pg_cluster, "DEFAULT_PORT", pg_cluster._free_port())  # nothing listens there
    folder = tempfile.mkdtemp(prefix="s3qbb-test-pg-")
    monkeypatch.setenv(pg_cluster.DIR_ENV, folder)
    try:
        url, reason = pg_cluster._resolve()
        assert reason == "" and url is not None and (Path(folder) / "url").read_text() == url
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pg_cluster.cleanup(folder)


def test_without_server_or_binaries_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pg_cluster.URL_ENV, raising=False)
    monkeypatch.setattr(pg_cluster, "DEFAULT_PORT", pg_cluster._free_port())
    monkeypatch.setattr(pg_cluster, "find_binaries", lambda: None)
    url, reason = pg_cluster._resolve()
    assert url is None
    assert "no database at 127.0.0.1:" in reason and "no initdb/pg_ctl on PATH" in reason


def test_session_has_a_database_without_any_variable() -> None:
    # `make test` sets no variable: the session found 127.0.0.1:5432 or started a cluster.
    url = pg_cluster.postgres_url()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
