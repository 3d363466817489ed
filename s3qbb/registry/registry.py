"""The central registry: one place to ask which datasets a run made, where they are, and how."""

from __future__ import annotations

__all__ = ["Registry"]

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..errors import RegistryError
from .database import (
    connect_error,
    create_registry_engine,
    ensure_schema,
    is_connect_failure,
    is_transient_db_error,
    parse_registry_url,
    safe_url,
)
from .ingest import ingest_run
from .queries import count_datasets, count_rows, find_datasets, get_quantum, provenance_tree
from .sources import DEFAULT_MAX_FILE_BYTES
from .writer import RegistryWriter, describe_db_error

if TYPE_CHECKING:
    from ..config import RetryConfig, S3EndpointConfig
    from ..retry import RetryPolicy, RetryStats
    from ..s3.objects import S3Bucket
    from .results import DatasetRow, IngestProgress, IngestSummary, ProvenanceTree, QuantumRow


class Registry:
    """A registry of datasets, datastore records, quanta and their provenance (SQLite or PostgreSQL).

    Use `from_url` to open one; the tables are created on first use.

    Parameters
    ----------
    engine : `sqlalchemy.Engine`
        Engine from `~s3qbb.registry.database.create_registry_engine`, its
        schema already checked.
    url : `sqlalchemy.URL`
        Its URL.
    retry : `~s3qbb.retry.RetryPolicy`, optional
        Retries a write transaction on contention (deadlock, serialization
        failure, lost connection, SQLite lock timeout).

    Examples
    --------
    >>> from s3qbb.registry import Registry
    >>> with Registry.from_url("sqlite://") as registry:
    ...     registry.datasets()
    []
    """

    def __init__(self, engine: sa.Engine, url: sa.URL, *, retry: RetryPolicy | None = None) -> None:
        from ..retry import RetryPolicy

        self._engine = engine
        self._url = url
        self._retry = retry or RetryPolicy(is_transient=is_transient_db_error)
        password = None if url.password is None else str(url.password)
        self._writer = RegistryWriter(engine, self._retry, lambda err: describe_db_error(err, password))

    @classmethod
    def from_url(
        cls,
        url: str | os.PathLike[str] | sa.URL,
        *,
        namespace: str | None = None,
        create: bool = True,
        connect_timeout: float = 10.0,
        retry: RetryConfig | None = None,
    ) -> Registry:
        """Open a registry, creating its tables if needed.

        Parameters
        ----------
        url : `str`, `os.PathLike` or `sqlalchemy.URL`
            ``sqlite:///PATH`` (or a bare path), ``sqlite://`` (in memory), or
            ``postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DATABASE``
            (``postgresql://`` and ``postgres://`` work too; install the
            ``postgres`` extra).
        namespace : `str`, optional
            PostgreSQL schema holding the tables (created if missing);
            ``public`` by default. Several registries can share a database.
        create : `bool`, optional
            Create the tables when missing; with `False`, a database without
            a registry is an error.
        connect_timeout : `float`, optional
            Seconds to wait for a PostgreSQL server.
        retry : `~s3qbb.config.RetryConfig`, optional
            Bounds of the retries of write transactions.

        Returns
        -------
        registry : `Registry`
            The open registry.

        Raises
        ------
        ConfigError
            Raised if the URL cannot be used.
        RegistryConnectionError
            Raised if the server cannot be reached (the message names the
            host, never the password).
        CredentialsError
            Raised if the server refuses the user, password or database.
        RegistryError
            Raised if the database holds a registry of another schema version.
        """
        from ..retry import RetryPolicy

        parsed = parse_registry_url(url)
        if (
            not create
            and parsed.get_backend_name() == "sqlite"
            and parsed.database not in (None, "", ":memory:")
        ):
            from pathlib import Path

            if not Path(parsed.database).is_file():
                raise RegistryError(
                    f"Registry {safe_url(parsed)} does not exist; run `s3qbb ingest RUN_URI --registry URL` "
                    "to make it, or check the registry URL."
                )
        engine = create_registry_engine(parsed, namespace=namespace, connect_timeout=connect_timeout)
        try:
            ensure_schema(engine, parsed, namespace=namespace, create=create)
        except BaseException:
            engine.dispose()
            raise
        policy = RetryPolicy(retry, is_transient=is_transient_db_error) if retry is not None else None
        return cls(engine, parsed, retry=policy)

    # ------------------------------------------------------------ properties

    @property
    def url(self) -> str:
        """The registry URL with ``***`` for the password."""
        return safe_url(self._url)

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for tools that run their own SQL)."""
        return self._engine

    @property
    def retry_stats(self) -> RetryStats:
        """Counters of the write-transaction retries (deadlocks, lock timeouts, lost connections)."""
        return self._retry.stats

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self._engine.dialect.name)

    # ---------------------------------------------------------------- ingest

    def ingest_run(
        self,
        uri: str,
        *,
        config: S3EndpointConfig | None = None,
        workers: int = 16,
        batch_size: int = 200,
        progress: Callable[[IngestProgress], None] | None = None,
        run: str | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        bucket: S3Bucket | None = None,
    ) -> IngestSummary:
        """Ingest the per-quantum files a run left in ``<run>/_records/``.

        Idempotent (a second ingest adds nothing, downloads nothing and says
        so in `IngestSummary.describe`), resumable (quanta already in the
        registry whose files did not change are skipped after one query), and
        safe to run from many processes at once. The last attempt of a
        quantum wins: files rewritten by a later attempt (or a recovery of
        one) replace the quantum's rows, an earlier attempt's never do (see
        :mod:`s3qbb.registry.attempts`). Files that fail validation (the
        records ``.sqlite3`` included) are reported with their key and
        skipped; the others are ingested.

        Parameters
        ----------
        uri : `str`
            ``s3://bucket/root/<run>/``: the run's prefix, or the run's own name
            where s3qbb stores it sanitised (``s3://bucket/root/rün/日本/`` for
            ``root/r%C3%BCn/%E6%97%A5%E6%9C%AC/``: read there when nothing is under the
            URI as given; the summary's ``uri`` says which prefix was read).
        config : `~s3qbb.config.S3EndpointConfig`, optional
            S3 endpoint and credentials; from the environment if not given.
        workers : `int`, optional
            Parallel downloads.
        batch_size : `int`, optional
            Quanta per database transaction.
        progress : `~collections.abc.Callable` [[`IngestProgress`], `None`], optional
            Called after each quantum and each batch (see `TextProgressBar`).
        run : `str`, optional
            Run of quanta without an execution report whose outputs name
            none; the last segment of ``uri`` by default.
        max_file_bytes : `int`, optional
            Largest provenance or report file downloaded; larger ones are
            reported and skipped.
        bucket : `~s3qbb.s3.objects.S3Bucket`, optional
            Bucket object to read through instead of one built from
            ``config`` (fault injection in tests).

        Returns
        -------
        summary : `IngestSummary`
            Quanta added and skipped, datasets and records added, bytes
            downloaded, failures as ``(key, reason)``.

        Raises
        ------
        S3qbbError
            Raised if the run cannot be listed (missing bucket, access
            denied, endpoint unreachable).
        TransientStorageError
            Raised if the registry stays contended or unreachable beyond the
            retry policy; what was committed stays, and a new ingest resumes.
        """
        try:
            return ingest_run(
                self._writer,
                uri,
                registry_name=self.url,
                config=config,
                workers=workers,
                batch_size=batch_size,
                progress=progress,
                run=run,
                max_file_bytes=max_file_bytes,
                bucket=bucket,
            )
        except sa.exc.DBAPIError as err:
            if is_connect_failure(err):
                raise connect_error(err, self._url) from None
            raise self._db_error(err, "Ingest") from None

    # --------------------------------------------------------------- queries

    def datasets(
        self,
        run: str | None = None,
        dataset_type: str | None = None,
        data_id: Mapping[str, int | str] | None = None,
        *,
        stored: bool | None = None,
        limit: int | None = None,
    ) -> list[DatasetRow]:
        """Return the datasets matching every filter given.

        Parameters
        ----------
        run : `str`, optional
            Run collection.
        dataset_type : `str`, optional
            Dataset type name.
        data_id : `~collections.abc.Mapping` [`str`, `int` or `str`], optional
            Dimension values the data ID must include (``{"visit": 42}``).
        stored : `bool`, optional
            Only datasets with (`True`) or without (`False`) datastore records.
        limit : `int`, optional
            At most this many datasets, the first by dataset type, data ID
            and ID (the query's ``LIMIT``); `count_datasets` tells how many
            there are in all.

        Returns
        -------
        datasets : `list` [`DatasetRow`]
            With their datastore records, sorted by dataset type, data ID and ID.
        """
        with self._reading() as conn:
            return find_datasets(
                conn, run=run, dataset_type=dataset_type, data_id=data_id, stored=stored, limit=limit
            )

    def count_datasets(
        self,
        run: str | None = None,
        dataset_type: str | None = None,
        data_id: Mapping[str, int | str] | None = None,
        *,
        stored: bool | None = None,
    ) -> int:
        """Return the number of datasets `datasets` returns with the same filters and no limit.

        Parameters
        ----------
        run, dataset_type, data_id, stored : optional
            As for `datasets`.

        Returns
        -------
        count : `int`
            Datasets matching every filter given.
        """
        with self._reading() as conn:
            return count_datasets(conn, run=run, dataset_type=dataset_type, data_id=data_id, stored=stored)

    def provenance(self, dataset_id: uuid.UUID | str, depth: int = 1) -> ProvenanceTree:
        """Return the producing quantum of a dataset, its actual inputs, and so on up to ``depth``.

        Parameters
        ----------
        dataset_id : `uuid.UUID` or `str`
            The dataset.
        depth : `int`, optional
            Producing-quantum levels to follow upward.

        Returns
        -------
        tree : `ProvenanceTree`
            Datasets and quanta reached.

        Raises
        ------
        DatasetNotFoundError
            Raised if the registry does not know the dataset.
        """
        with self._reading() as conn:
            return provenance_tree(conn, _uuid(dataset_id), depth)

    def quantum(self, quantum_id: uuid.UUID | str) -> QuantumRow | None:
        """Return a quantum with its datasets by role, or `None` if unknown.

        Parameters
        ----------
        quantum_id : `uuid.UUID` or `str`
            The quantum.

        Returns
        -------
        quantum : `QuantumRow` or `None`
            Task, status, times, host, error, and dataset IDs by role.
        """
        with self._reading() as conn:
            return get_quantum(conn, _uuid(quantum_id))

    def counts(self) -> dict[str, int]:
        """Return the number of rows of every table.

        Returns
        -------
        counts : `dict` [`str`, `int`]
            Table name to rows.
        """
        with self._reading() as conn:
            return count_rows(conn)

    # -------------------------------------------------------------- plumbing

    def _db_error(self, err: sa.exc.DBAPIError, action: str) -> RegistryError:
        password = None if self._url.password is None else str(self._url.password)
        return RegistryError(f"{action} in registry {self.url} failed: {describe_db_error(err, password)}")

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        """Open a read transaction; database errors become errors without credentials."""
        try:
            conn = self._engine.connect()
        except sa.exc.DBAPIError as err:
            raise connect_error(err, self._url) from None
        try:
            with conn.begin():
                yield conn
        except sa.exc.DBAPIError as err:
            # Not chained: the driver's text is in the message, and SQLAlchemy's adds the statement.
            raise self._db_error(err, "A query") from None
        finally:
            conn.close()

    def close(self) -> None:
        """Close the registry's connections."""
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as err:
        from ..errors import ConfigError

        raise ConfigError(f"{str(value)[:80]!r} is not a UUID; dataset and quantum IDs are UUIDs.") from err
