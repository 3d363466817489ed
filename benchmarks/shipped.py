"""What users run against the raw SDKs: the shipped default butler, its variants, raw boto3 and obstore.

On one server, in one run, trials interleaved (`benchmarks.harness`), these
*sides* do the same work:

``shipped``
    `s3qbb.QuantumBackedButler` as a user gets it: ``QuantumBackedButler.initialize``
    (or ``from_predicted`` for reads) on a configuration that names only the
    root and the endpoint, so the cache tier is on and the transport is boto3;
``cache_off``
    the same with ``cache: {enabled: false}``;
``datastore``
    a bare `s3qbb.datastores.s3.S3Datastore` (no butler, no cache tier);
``obstore``
    the shipped default with the obstore transport (``S3EndpointConfig(transport="obstore")``),
    when this s3qbb has it and obstore is installed; otherwise the side is left
    out and the report says why;
``boto3``
    raw boto3, the reference: ``put_object`` (with the CRC32C header and
    ``If-None-Match: *`` s3qbb sends) / ``get_object`` + ``read`` on a client
    with s3qbb's settings; for 64 MiB, the boto3 transfer manager
    (``upload_fileobj`` / ``download_fileobj``, classic s3transfer, defaults);
``boto3_default``
    small objects only: a default boto3 client's plain ``put_object`` / ``get_object``;
``obstore_raw``
    raw obstore (``obstore.put(..., mode="create")`` / ``obstore.get`` on an
    ``S3Store`` with its retries off), the second reference.

Small datasets are a 1 KiB JSON dict (storage class ``StructuredDataDict``);
the raw sides serialise it with `json.dumps` and parse what they read with
`json.loads`, as a user of the raw SDK would. Small gets are cold: a fresh
butler (or datastore) reads each dataset once, so every get misses the cache
and sends a GET. 64 MiB datasets are ``Bytes``; each get uses a fresh butler.
Wall time and client CPU (this process) are timed per operation; requests are
counted per side (the datastore's ``stats`` for s3qbb's sides, a
`s3qbb.testing.faults.RequestCounter` on raw boto3's clients, calls for raw
obstore, whose retries are off so one call is one request; its multipart put
is counted on the wire in one more, untimed, put through a relaying proxy,
`s3qbb.testing.proxy.FaultProxy`). Peak RSS comes from fresh processes
(`benchmarks.memory_child`).
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from s3qbb.testing.counting import OperationCounts

from .s3_datastore import SMALL_SIZE
from .servers import process_cpu_seconds, server_pid

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mypy_boto3_s3 import S3Client

    from s3qbb.core.dataset_ref import DatasetRef
    from s3qbb.core.dataset_type import DatasetType
    from s3qbb.datastores.stats import DatastoreStats
    from s3qbb.testing.servers import S3TestEndpoint, S3TestServer

__all__ = [
    "BUCKET",
    "REFERENCES",
    "S3QBB_SIDES",
    "SIDE_LABELS",
    "CallCounter",
    "ShippedContext",
    "ShippedCounts",
    "StatsCounter",
    "export_records",
    "obstore_raw_status",
    "obstore_transport_status",
    "small_payload",
    "stats_of",
]

BUCKET = "s3qbb-users"
_MIB = 2**20

S3QBB_SIDES = ("shipped", "cache_off", "datastore", "obstore")
"""s3qbb's sides, the shipped default first."""
REFERENCES = ("boto3", "boto3_default", "obstore_raw")
"""The raw SDK sides."""
SIDE_LABELS = {
    "shipped": "shipped default",
    "cache_off": "cache off",
    "datastore": "bare S3Datastore",
    "obstore": "obstore transport",
    "boto3": "raw boto3",
    "boto3_default": "raw boto3, default client",
    "obstore_raw": "raw obstore",
}
"""How the report names each side."""


@dataclass(frozen=True)
class ShippedCounts:
    """How much work the cases of this module do."""

    # Many short trials: every side meets the same drift of the machine (two runs of 8 x 20 told
    # 1.10x and 1.17x apart on one machine); 240 samples per side.
    small_trials: int = 24
    small_ops: int = 10
    small_warmup: int = 5
    large_mib: int = 64
    large_trials: int = 3
    memory_ops: int = 200
    memory_runs: int = 2

    @classmethod
    def quick(cls) -> ShippedCounts:
        """Tiny counts: every side and case runs once or twice, nothing is measured seriously."""
        return cls(
            small_trials=1,
            small_ops=3,
            small_warmup=1,
            large_mib=2,
            large_trials=1,
            memory_ops=5,
            memory_runs=1,
        )


def small_payload() -> dict[str, int]:
    """The small dataset: a dict whose JSON is about 1 KiB."""
    return {f"key{i:03d}": 1_000_000 + i for i in range(SMALL_SIZE // 16)}


# ----------------------------------------------------------------- availability


def obstore_raw_status() -> str | None:
    """`None` when raw obstore can run here, else why not."""
    return None if importlib.util.find_spec("obstore") is not None else "obstore is not installed"


def obstore_transport_status() -> str | None:
    """`None` when s3qbb's obstore transport can run here, else why not (shown in the report)."""
    missing = obstore_raw_status()
    if missing:
        return missing
    from pydantic import ValidationError

    from s3qbb.config import S3EndpointConfig

    if "transport" not in S3EndpointConfig.model_fields:
        return "this s3qbb has no obstore transport (no S3EndpointConfig.transport)"
    try:
        S3EndpointConfig(transport="obstore")  # type: ignore[call-arg, unused-ignore]
    except ValidationError as err:
        return f"S3EndpointConfig refuses transport='obstore' ({err.errors()[0]['msg']})"
    return None


# ---------------------------------------------------------------- request counts


class StatsCounter:
    """Requests counted by a datastore's `~s3qbb.datastores.stats.DatastoreStats` (every attempt).

    Parameters
    ----------
    stats : `~s3qbb.datastores.stats.DatastoreStats`
        The counters of the datastore behind a butler (or of a bare datastore).
    """

    def __init__(self, stats: DatastoreStats) -> None:
        self.stats = stats

    @property
    def requests(self) -> Counter[str]:
        """Requests so far by operation name."""
        return Counter(self.stats.snapshot()["requests"])


class CallCounter(OperationCounts):
    """Requests of raw obstore, counted as calls (its retries are off: one call, one request)."""

    def count(self, operation: str) -> None:
        """Count one request of ``operation``."""
        self._add(operation)


# ---------------------------------------------------------------------- context


def stats_of(store: Any) -> DatastoreStats:
    """The request counters of a butler's datastore, or of a datastore."""
    stats: DatastoreStats = getattr(store, "_datastore", store).stats
    return stats


def export_records(store: Any, refs: Sequence[DatasetRef]) -> Any:
    return getattr(store, "_datastore", store).export_records(refs)


class ShippedContext:
    """Per-server state of the cases: endpoint, dataset types, raw clients, how to build each side.

    Parameters
    ----------
    server : `s3qbb.testing.servers.S3TestServer`
        A running server; it gets an empty bucket `BUCKET`.
    counts : `ShippedCounts`
        Work sizes.
    """

    def __init__(self, server: S3TestServer, counts: ShippedCounts) -> None:
        import boto3
        import botocore.config
        import botocore.loaders

        from s3qbb import DatasetType, DimensionUniverse
        from s3qbb.s3.client import _create_client
        from s3qbb.testing.faults import RequestCounter

        self.server = server
        self.counts = counts
        self.tag = uuid.uuid4().hex[:8]
        self.endpoint: S3TestEndpoint = server.endpoint(BUCKET)
        self.universe = DimensionUniverse()
        self.small_type: DatasetType = DatasetType(
            "small", ["instrument", "visit"], "StructuredDataDict", universe=self.universe
        )
        self.large_type: DatasetType = DatasetType(
            "large", ["instrument", "visit"], "Bytes", universe=self.universe
        )
        self.unavailable: dict[str, str] = {}
        if (why := obstore_transport_status()) is not None:
            self.unavailable["obstore"] = why
        if (why := obstore_raw_status()) is not None:
            self.unavailable["obstore_raw"] = why
        self.admin: S3Client = self.endpoint.client
        self.plain: S3Client = _create_client(self.endpoint.config, botocore.loaders.create_loader())
        self.plain_counter = RequestCounter(self.plain)
        creds = server.credentials("admin")
        self.credentials = creds
        session = boto3.Session(
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            region_name="us-east-1",
        )
        self.default: S3Client = session.client(
            "s3",
            endpoint_url=server.endpoint_url,
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )
        self.default_counter = RequestCounter(self.default)
        self.obstore_counter = CallCounter()
        self.store: Any = (
            None if "obstore_raw" in self.unavailable else self.obstore_store(server.endpoint_url)
        )
        if "obstore" not in self.unavailable and (why := self._probe_transport("obstore")) is not None:
            self.unavailable["obstore"] = why
        pid = server_pid(server)
        self.server_cpu: Callable[[], float] | None = (
            (lambda: process_cpu_seconds(pid)) if pid is not None else None
        )

    def obstore_store(self, endpoint_url: str) -> Any:
        """A raw obstore ``S3Store`` on `BUCKET` at ``endpoint_url``, its retries off."""
        from datetime import timedelta

        from obstore.store import S3Store

        return S3Store(
            BUCKET,
            endpoint=endpoint_url,
            access_key_id=self.credentials.access_key_id,
            secret_access_key=self.credentials.secret_access_key,
            region="us-east-1",
            client_options={"allow_http": True},
            virtual_hosted_style_request=False,
            retry_config={
                "max_retries": 0,
                "backoff": {
                    "init_backoff": timedelta(milliseconds=100),
                    "max_backoff": timedelta(seconds=1),
                    "base": 2,
                },
                "retry_timeout": timedelta(seconds=30),
            },
        )

    def _probe_transport(self, side: str) -> str | None:
        """Put and get one dataset with ``side``'s configuration (untimed); `None` if it works, else why not.

        A transport this s3qbb names but cannot run (a module missing, a server
        it cannot talk to) is then reported as not available, with the error,
        instead of stopping the whole report.
        """
        refs = self.refs(self.small_type, f"probe-{side}", 1)
        try:
            writer = self.writer(side, refs)
            try:
                writer.put({"probe": 1}, refs[0])
                records = export_records(writer, refs)
            finally:
                writer.close()
            reader = self.reader(side, refs, records)
            try:
                if reader.get(refs[0]) != {"probe": 1}:
                    return "a probe put and get read back a different dataset"
            finally:
                reader.close()
        except Exception as err:  # any failure makes the side unavailable, with its reason
            first = (str(err).splitlines() or [""])[0][:200]
            return f"a probe put and get failed: {type(err).__name__}: {first}"
        return None

    # --- sides

    def s3qbb_sides(self) -> list[str]:
        """s3qbb's sides that can run here."""
        return [side for side in S3QBB_SIDES if side not in self.unavailable]

    def has(self, side: str) -> bool:
        """Whether ``side`` can run here."""
        return side not in self.unavailable

    def endpoint_config(self, side: str) -> dict[str, Any]:
        """The endpoint section of a side's configuration (its transport named when s3qbb has them)."""
        from s3qbb.config import S3EndpointConfig

        config = self.endpoint.config
        secret = config.secret_access_key
        section: dict[str, Any] = json.loads(config.model_dump_json()) | {
            "secret_access_key": secret.get_secret_value() if secret is not None else None
        }
        if "transport" in S3EndpointConfig.model_fields:
            section["transport"] = "obstore" if side == "obstore" else "boto3"
        return section

    def repo_config(self, side: str) -> dict[str, Any]:
        """Repository configuration of a butler side: root and endpoint, plus ``cache`` for ``cache_off``."""
        config: dict[str, Any] = {
            "datastore": {"root": f"s3://{BUCKET}/repo", "endpoint": self.endpoint_config(side)}
        }
        if side == "cache_off":
            config["cache"] = {"enabled": False}
        return config

    def refs(self, dataset_type: DatasetType, side: str, count: int) -> list[DatasetRef]:
        """``count`` fresh refs of ``dataset_type`` in a run of their own."""
        from s3qbb import DatasetRef

        run = f"users/{self.tag}/{side}/{dataset_type.name}/{uuid.uuid4().hex[:6]}"
        return [DatasetRef(dataset_type, {"instrument": "Bench", "visit": i}, run) for i in range(count)]

    def writer(self, side: str, refs: Sequence[DatasetRef]) -> Any:
        """A butler (or datastore) of ``side`` that may write ``refs``."""
        from s3qbb import Quantum, QuantumBackedButler

        if side == "datastore":
            return self._datastore()
        quantum = Quantum(taskLabel="bench", outputs=list(refs))
        return QuantumBackedButler.initialize(self.repo_config(side), quantum, self.universe)

    def reader(self, side: str, refs: Sequence[DatasetRef], records: Any) -> Any:
        """A fresh butler (or datastore) of ``side`` reading ``refs`` (their records given): a cold cache."""
        from s3qbb import QuantumBackedButler

        if side == "datastore":
            store = self._datastore()
            store.import_records(records)
            return store
        return QuantumBackedButler.from_predicted(
            self.repo_config(side), [r.id for r in refs], [], self.universe, records, refs=refs
        )

    def _datastore(self) -> Any:
        from s3qbb.config import S3EndpointConfig
        from s3qbb.datastores.s3 import S3Datastore

        config = S3EndpointConfig.model_validate(self.endpoint_config("datastore"))
        return S3Datastore(f"s3://{BUCKET}/repo", name="S3Datastore", config=config)

    def raw_key(self, side: str, what: str, i: int) -> str:
        """Key of raw side ``side``'s object number ``i``, in a folder of its own.

        The butler's keys have the shape of its default file template
        (``{run}/{datasetType}/{visit}/{datasetType}_{id}.json``), so each
        dataset of these cases lands in a folder of its own; the raw sides'
        keys have the same shape (as `benchmarks.s3_datastore`'s do) so that
        every side asks the server for the same work (SeaweedFS's filer makes
        an entry for each new folder, which a 1 KiB PUT notably pays for).
        """
        return f"raw/{self.tag}/{side}/{what}/{i}/{what}_{uuid.uuid4()}.json"

    def close(self) -> None:
        """Close the raw clients."""
        self.plain_counter.detach()
        self.default_counter.detach()
        self.plain.close()
        self.default.close()
