"""Registry databases: URLs, engines, versioned schema creation and error translation.

A registry lives in SQLite (a file, the default, or ``sqlite://`` in memory)
or PostgreSQL (``postgresql+psycopg://user@host/db``, the ``postgres``
extra). Errors and representations show URLs with ``***`` for the password
(`safe_url`); the password is never put in a message.
"""

from __future__ import annotations

__all__ = [
    "WRITE_OPTION",
    "connect_error",
    "create_registry_engine",
    "ensure_schema",
    "is_connect_failure",
    "is_transient_db_error",
    "parse_registry_url",
    "safe_url",
]

import os
import re
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from ..errors import ConfigError, CredentialsError, RegistryConnectionError, RegistryError
from ..provenance.files import redact
from ..sqlite_engine import install_sqlite_listeners
from .schema import META_TABLE, REGISTRY_SCHEMA_VERSION, UPGRADES, make_tables

WRITE_OPTION = "s3qbb_registry_write"
"""Execution option marking a connection whose transactions write (SQLite: ``BEGIN IMMEDIATE``)."""

_NAMESPACE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# PostgreSQL SQLSTATEs of errors worth retrying the whole transaction for.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
# psycopg reports connection-time failures without a SQLSTATE, so the server's text is all there is.
_AUTH_MARKERS = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "does not exist",  # role "x" does not exist; database "y" does not exist
    "no pg_hba.conf entry",
    "permission denied",
)


def safe_url(url: sa.URL) -> str:
    """Return a URL as text with its password replaced by ``***``.

    Parameters
    ----------
    url : `sqlalchemy.URL`
        Database URL.

    Returns
    -------
    text : `str`
        ``render_as_string(hide_password=True)``.
    """
    return url.render_as_string(hide_password=True)


def parse_registry_url(url: str | os.PathLike[str] | sa.URL) -> sa.URL:
    """Interpret a registry location.

    Parameters
    ----------
    url : `str`, `os.PathLike` or `sqlalchemy.URL`
        ``sqlite:///path``, ``sqlite://`` (in memory), ``postgresql://...``
        (``postgres://`` and a missing driver mean ``postgresql+psycopg``),
        or a bare file path, which means SQLite.

    Returns
    -------
    url : `sqlalchemy.URL`
        The URL; a bare path becomes an absolute ``sqlite:///`` URL.

    Raises
    ------
    ConfigError
        Raised if the URL cannot be parsed or names another kind of database.
    """
    if isinstance(url, sa.URL):
        parsed = url
    else:
        text = os.fspath(url)
        if "://" not in text:
            if not text:
                raise ConfigError(
                    "The registry location is empty; give a SQLite file path or a database URL."
                )
            return sa.URL.create("sqlite", database=str(Path(text).expanduser().absolute()))
        if text.startswith("postgres://"):
            text = "postgresql://" + text.removeprefix("postgres://")
        try:
            parsed = sa.make_url(text)
        except (sa.exc.ArgumentError, ValueError):
            # Not chained: SQLAlchemy's message repeats the whole URL, password included.
            raise ConfigError(
                f"Registry URL {redact(text)!r} cannot be parsed; use sqlite:///PATH, a file path, or "
                "postgresql+psycopg://USER@HOST/DATABASE."
            ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":  # psycopg 3 (the postgres extra), whatever the default
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed
    if backend == "sqlite":
        return parsed
    raise ConfigError(
        f"Registry URL {safe_url(parsed)!r} names a {backend!r} database; s3qbb registries use SQLite "
        "(sqlite:///PATH or a file path) or PostgreSQL (postgresql+psycopg://USER@HOST/DATABASE)."
    )


def _sqlite_engine(url: sa.URL, busy_timeout_ms: int) -> sa.Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:")
    if in_memory:
        # One shared connection: every new connection to ":memory:" would be another, empty database.
        engine = sa.create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RegistryConnectionError(
                f"Cannot create the folder of registry {safe_url(url)}: {err.strerror or err}. "
                "Choose a path in a writable folder."
            ) from err
        engine = sa.create_engine(url)

    # Write-ahead log: queries keep reading while an ingest writes. The registry is a local file
    # (WAL needs shared memory, so not a network file system).
    pragmas = () if in_memory else ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")
    return install_sqlite_listeners(
        engine, busy_timeout_ms=busy_timeout_ms, write_option=WRITE_OPTION, pragmas=pragmas
    )


def create_registry_engine(
    url: sa.URL,
    *,
    namespace: str | None = None,
    connect_timeout: float = 10.0,
    busy_timeout_ms: int = 60_000,
) -> sa.Engine:
    """Create the engine of a registry database (no connection is made yet).

    Parameters
    ----------
    url : `sqlalchemy.URL`
        From `parse_registry_url`.
    namespace : `str`, optional
        PostgreSQL schema holding the tables (created if missing); the
        connection's default (``public``) if not given. Not for SQLite.
    connect_timeout : `float`, optional
        Seconds to wait for a PostgreSQL connection.
    busy_timeout_ms : `int`, optional
        Milliseconds SQLite waits for another process's lock.

    Returns
    -------
    engine : `sqlalchemy.Engine`
        The engine; SQLite connections enforce foreign keys and writers begin
        with ``BEGIN IMMEDIATE`` (`WRITE_OPTION`).

    Raises
    ------
    ConfigError
        Raised if ``namespace`` is given for SQLite or is not a lower-case identifier.
    """
    if url.get_backend_name() == "sqlite":
        if namespace is not None:
            raise ConfigError(
                f"Registry namespace {namespace!r} needs PostgreSQL; SQLite registries use one file each."
            )
        return _sqlite_engine(url, busy_timeout_ms)
    connect_args: dict[str, Any] = {"application_name": "s3qbb-registry"}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = max(1, round(connect_timeout))
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if namespace is not None:
        if _NAMESPACE_RE.fullmatch(namespace) is None:
            raise ConfigError(
                f"Registry namespace {namespace!r} must be a lower-case identifier "
                "([a-z_][a-z0-9_]*, at most 63 characters)."
            )
        engine = engine.execution_options(schema_translate_map={None: namespace})
    return engine


def _driver_message(err: BaseException, url: sa.URL) -> str:
    orig = getattr(err, "orig", None) or err
    text = " ".join(str(orig).split())
    if url.password:
        text = text.replace(str(url.password), "***")
    return redact(text)[:500]


def connect_error(err: BaseException, url: sa.URL) -> RegistryError | CredentialsError:
    """Translate a failure to connect to a registry database.

    Parameters
    ----------
    err : `BaseException`
        The driver or SQLAlchemy error.
    url : `sqlalchemy.URL`
        The registry URL.

    Returns
    -------
    error : `~s3qbb.errors.CredentialsError` or `~s3qbb.errors.RegistryConnectionError`
        `~s3qbb.errors.CredentialsError` when the server refused the user,
        password or database, `~s3qbb.errors.RegistryConnectionError`
        otherwise; the message names the host and port, never the password.
    """
    where = f"{url.host or 'localhost'}:{url.port or 5432}" if url.host or url.port else url.database or "?"
    detail = _driver_message(err, url)
    lowered = detail.lower()
    if url.get_backend_name() != "sqlite" and any(marker in lowered for marker in _AUTH_MARKERS):
        return CredentialsError(
            f"Registry database at {where} ({safe_url(url)}) refused the connection of user "
            f"{url.username or '(default)'!r}: {detail}. Check the user name, password (not shown) and "
            "database name."
        )
    check = (
        "Check that the SQLite file's folder exists and is writable."
        if url.get_backend_name() == "sqlite"
        else "Check that the database server is running and reachable from this host."
    )
    return RegistryConnectionError(
        f"Cannot connect to the registry database at {where} ({safe_url(url)}): {detail}. {check}"
    )


def is_connect_failure(err: sa.exc.DBAPIError) -> bool:
    """Tell whether a database error means the registry could not be reached or opened.

    Parameters
    ----------
    err : `sqlalchemy.exc.DBAPIError`
        The error.

    Returns
    -------
    failure : `bool`
        `True` for lost or refused PostgreSQL connections (psycopg gives
        those no SQLSTATE) and SQLite files that cannot be opened.
    """
    if err.connection_invalidated:
        return True
    orig = err.orig
    if isinstance(orig, sqlite3.Error):
        return getattr(orig, "sqlite_errorname", "") in ("SQLITE_CANTOPEN", "SQLITE_PERM")
    return isinstance(err, sa.exc.OperationalError) and getattr(orig, "sqlstate", None) is None


def is_transient_db_error(exc: BaseException) -> bool:
    """Tell whether a failed registry transaction is worth running again.

    Parameters
    ----------
    exc : `BaseException`
        The error.

    Returns
    -------
    transient : `bool`
        `True` for PostgreSQL deadlocks and serialization failures, lost
        connections, and SQLite's "database is locked" after its busy timeout.
    """
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    # sqlite3 exposes the result code name from Python 3.11 on; both codes mean "another writer".
    return isinstance(orig, sqlite3.OperationalError) and getattr(orig, "sqlite_errorname", "") in (
        "SQLITE_BUSY",
        "SQLITE_LOCKED",
    )


def _advisory_key(namespace: str | None) -> int:
    return zlib.crc32(f"s3qbb-registry:{namespace or ''}".encode()) & 0x7FFFFFFF


def _stored_version(conn: sa.Connection) -> str | None:
    meta = make_tables().meta
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    return None if value is None else str(value)


def ensure_schema(
    engine: sa.Engine, url: sa.URL, *, namespace: str | None = None, create: bool = True
) -> str:
    """Create the registry tables if needed and check the schema version.

    Concurrent callers are safe: on PostgreSQL creation runs under a
    transaction-level advisory lock, on SQLite in a ``BEGIN IMMEDIATE``
    transaction.

    Parameters
    ----------
    engine : `sqlalchemy.Engine`
        Registry engine.
    url : `sqlalchemy.URL`
        Its URL, for messages.
    namespace : `str`, optional
        PostgreSQL schema of the tables, created if missing.
    create : `bool`, optional
        Create missing tables; if `False` a registry without tables is an error.

    Returns
    -------
    version : `str`
        The schema version, `~s3qbb.registry.schema.REGISTRY_SCHEMA_VERSION`.

    Raises
    ------
    RegistryConnectionError, CredentialsError
        Raised if the database cannot be reached or refuses the user.
    RegistryError
        Raised if the registry has another schema version, or is missing
        while ``create`` is `False`.
    """
    tables = make_tables()
    try:
        with engine.connect() as conn:
            version = _stored_version(conn) if sa.inspect(conn).has_table(META_TABLE, namespace) else None
    except sa.exc.DBAPIError as err:
        # Not chained (here and below): the driver's text, already in the message, is all it adds,
        # and a chained error would be printed unredacted.
        if is_connect_failure(err):
            raise connect_error(err, url) from None
        raise RegistryError(
            f"Cannot read registry {safe_url(url)}: {_driver_message(err, url)}. Check that it is an s3qbb "
            "registry database and is not corrupt."
        ) from None
    if version is None:
        if not create:
            raise RegistryError(
                f"{safe_url(url)} holds no s3qbb registry; check the registry URL, or ingest a run into it "
                "to make one (`s3qbb ingest RUN_URI --registry URL`)."
            )
        try:
            with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_advisory_key(namespace))))
                    if namespace is not None:
                        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{namespace}"')
                tables.metadata.create_all(conn, checkfirst=True)
                if _stored_version(conn) is None:
                    conn.execute(
                        tables.meta.insert().values(key="schema_version", value=REGISTRY_SCHEMA_VERSION)
                    )
                version = _stored_version(conn)
        except sa.exc.DBAPIError as err:
            raise RegistryError(
                f"Cannot create the registry tables in {safe_url(url)}: {_driver_message(err, url)}. "
                "Check that the user may create tables."
            ) from None
    if version in UPGRADES and version != REGISTRY_SCHEMA_VERSION:
        version = _upgrade(engine, url, namespace)
    if version != REGISTRY_SCHEMA_VERSION:
        raise RegistryError(
            f"Registry {safe_url(url)} has schema version {version!r}; this s3qbb uses version "
            f"{REGISTRY_SCHEMA_VERSION!r}. Use the s3qbb release that created it, or a new registry."
        )
    return version


def _upgrade(engine: sa.Engine, url: sa.URL, namespace: str | None) -> str | None:
    """Upgrade an older registry schema in place (adds columns); return the version reached.

    Runs in one write transaction (under the advisory lock on PostgreSQL), so
    concurrent openers upgrade once; the version is read again inside it.
    """
    quote = engine.dialect.identifier_preparer.quote
    prefix = f"{quote(namespace)}." if namespace else ""
    meta = make_tables().meta
    try:
        with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_advisory_key(namespace))))
            version = _stored_version(conn)
            while version in UPGRADES and version != REGISTRY_SCHEMA_VERSION:
                for table, column in UPGRADES[version]:
                    conn.exec_driver_sql(f"ALTER TABLE {prefix}{quote(table)} ADD COLUMN {column}")
                version = str(int(version) + 1)
                conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=version))
            return version
    except sa.exc.DBAPIError as err:
        raise RegistryError(
            f"Cannot upgrade the registry schema of {safe_url(url)} to version {REGISTRY_SCHEMA_VERSION}: "
            f"{_driver_message(err, url)}. Check that the user may alter its tables."
        ) from None
