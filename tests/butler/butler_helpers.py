"""Helpers of the QuantumBackedButler tests: repository configs, quanta and raw looks at the bucket."""

from __future__ import annotations

__all__ = [
    "PREFIX",
    "RUN",
    "ButlerEnv",
    "RecordsFiles",
    "backend_of",
    "caching_available",
    "client_of",
]

import importlib.util
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3qbb.butler import QuantumBackedButler
from s3qbb.core.quantum import Quantum
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.provenance import (
    QuantumExecutionReport,
    QuantumProvenanceData,
    provenance_key,
    records_key,
    report_key,
)
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.data import RefMaker

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from s3qbb.core.dataset_ref import DatasetRef
    from s3qbb.core.records import DatastoreRecordData
    from s3qbb.datastores.base import Datastore
    from s3qbb.testing.servers import S3TestEndpoint

PREFIX = "repo/root"
"""Prefix of the datastore root inside the test bucket."""

RUN = "qbb_run"
"""Default output run of the refs made by `ButlerEnv.refs`."""

# ExampleModel lives in s3qbb.testing.data; the repository must know its storage class.
_EXAMPLE_STORAGE_CLASSES = {
    "ExampleModel": {"pytype": "s3qbb.testing.data.ExampleModel", "formatter": "json"},
}


def caching_available() -> bool:
    """Return whether the caching datastore module exists (it is the default cache tier)."""
    return importlib.util.find_spec("s3qbb.datastores.caching") is not None


def backend_of(datastore: Datastore) -> S3Datastore:
    """Return the S3 datastore under a (possibly caching) datastore."""
    store: Any = datastore
    while not isinstance(store, S3Datastore):
        store = store.backend
    return store


def client_of(butler: QuantumBackedButler) -> S3Client:
    """Return the boto3 client the butler's S3 datastore sends its requests with."""
    return backend_of(butler._datastore).bucket.client


@dataclass(frozen=True)
class RecordsFiles:
    """The three per-quantum files of a finished quantum, read through the raw client."""

    records: bytes
    provenance: QuantumProvenanceData
    report: QuantumExecutionReport
    provenance_bytes: bytes

    def records_rows(self, tmp_path: Path) -> dict[uuid.UUID, dict[str, Any]]:
        """Open the records file with plain `sqlite3` and return its file records by dataset ID."""
        path = tmp_path / f"records-{uuid.uuid4().hex}.sqlite3"
        path.write_bytes(self.records)
        with sqlite3.connect(path) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM file_datastore_records").fetchall()
        conn.close()
        return {uuid.UUID(row["dataset_id"]): dict(row) for row in rows}


@dataclass
class ButlerEnv:
    """A repository on a test S3 server, and ways to make quanta and butlers for it.

    Parameters
    ----------
    endpoint : `S3TestEndpoint`
        The server and the fresh bucket of the test.
    cache : `bool`
        Whether the repository configuration enables the in-memory cache tier.
    """

    endpoint: S3TestEndpoint
    cache: bool = False
    refs: RefMaker = field(default_factory=lambda: RefMaker(run=RUN))

    @property
    def root(self) -> str:
        """Root URI of the datastore."""
        return f"s3://{self.endpoint.bucket}/{PREFIX}"

    @property
    def backdoor(self) -> S3Backdoor:
        """Raw access to the datastore's objects."""
        return S3Backdoor(self.endpoint.client, self.endpoint.bucket, PREFIX)

    def config(self, identity: str = "admin", **endpoint_overrides: Any) -> dict[str, Any]:
        """Return a repository configuration mapping (endpoint as a model)."""
        endpoint = (
            self.endpoint.config_for(identity, **endpoint_overrides)
            if identity != "admin" or endpoint_overrides
            else self.endpoint.config
        )
        return {
            "datastore": {"root": self.root, "endpoint": endpoint},
            "cache": {"enabled": self.cache},
            "storageClasses": _EXAMPLE_STORAGE_CLASSES,
        }

    def plain_config(self) -> dict[str, Any]:
        """Return the configuration as plain JSON/YAML-serialisable data (secret included)."""
        endpoint = self.endpoint.config.model_dump(mode="json", exclude={"secret_access_key"})
        secret = self.endpoint.config.secret_access_key
        assert secret is not None
        endpoint["secret_access_key"] = secret.get_secret_value()
        return {
            "datastore": {"root": self.root, "endpoint": endpoint},
            "cache": {"enabled": self.cache},
            "storageClasses": _EXAMPLE_STORAGE_CLASSES,
        }

    def quantum(
        self,
        inputs: Iterable[DatasetRef] = (),
        outputs: Iterable[DatasetRef] = (),
        records: Mapping[str, DatastoreRecordData] | None = None,
        label: str = "task",
    ) -> Quantum:
        """Return a quantum with a task label."""
        return Quantum(
            taskName=f"tests.butler.{label}",
            taskLabel=label,
            inputs=list(inputs),
            outputs=list(outputs),
            datastore_records=records,
        )

    def butler(
        self,
        quantum: Quantum,
        config: Any = None,
        **kwargs: Any,
    ) -> QuantumBackedButler:
        """Return `QuantumBackedButler.initialize` of a quantum on this repository."""
        return QuantumBackedButler.initialize(
            self.config() if config is None else config, quantum, self.refs.universe, **kwargs
        )

    def all_keys(self) -> list[str]:
        """Return every key of the bucket."""
        return sorted(self.backdoor_all().keys())

    def backdoor_all(self) -> S3Backdoor:
        """Raw access to the whole bucket."""
        return S3Backdoor(self.endpoint.client, self.endpoint.bucket)

    def read(self, key: str) -> bytes:
        """Return an object's bytes through the raw client."""
        body: bytes = self.endpoint.client.get_object(Bucket=self.endpoint.bucket, Key=key)["Body"].read()
        return body

    def put_text(self, key: str, text: str) -> str:
        """Write an object through the raw client and return its ``s3://`` URI."""
        self.endpoint.client.put_object(Bucket=self.endpoint.bucket, Key=key, Body=text.encode())
        return f"s3://{self.endpoint.bucket}/{key}"

    def records_keys(self, quantum_id: uuid.UUID, run: str = RUN) -> tuple[str, str, str]:
        """Return the full keys of a quantum's records, provenance and report files."""
        return (
            f"{PREFIX}/{records_key(run, quantum_id)}",
            f"{PREFIX}/{provenance_key(run, quantum_id)}",
            f"{PREFIX}/{report_key(run, quantum_id)}",
        )

    def records_files(self, quantum_id: uuid.UUID, run: str = RUN) -> RecordsFiles:
        """Read a finished quantum's three files through the raw client."""
        rec, prov, rep = self.records_keys(quantum_id, run)
        prov_bytes = self.read(prov)
        return RecordsFiles(
            records=self.read(rec),
            provenance=QuantumProvenanceData.from_json(prov_bytes, source=prov),
            report=QuantumExecutionReport.from_json(self.read(rep), source=rep),
            provenance_bytes=prov_bytes,
        )
