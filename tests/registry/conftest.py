"""Fixtures of the registry tests: registries on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from registry_data import drop_namespace, skip_without_postgres

from s3qbb.registry import Registry


@pytest.fixture
def pg_namespace() -> Iterator[tuple[str, str]]:
    """A PostgreSQL URL and a fresh schema name, dropped after the test."""
    url = skip_without_postgres()
    namespace = f"s3qbb_test_{uuid.uuid4().hex[:12]}"
    yield url, namespace
    drop_namespace(url, namespace)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Registry]:
    """A new, empty registry: a SQLite file, or a fresh schema of the test PostgreSQL database."""
    if request.param == "sqlite":
        with Registry.from_url(tmp_path / "registry.sqlite3") as reg:
            yield reg
        return
    url = skip_without_postgres()
    namespace = f"s3qbb_test_{uuid.uuid4().hex[:12]}"
    try:
        with Registry.from_url(url, namespace=namespace) as reg:
            yield reg
    finally:
        drop_namespace(url, namespace)
