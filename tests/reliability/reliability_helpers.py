"""Helpers of the reliability and security tests: refs, repository configs, CLI runs, raw bucket looks.

Functions run in child processes (``multiprocessing`` with the spawn start
method) live here too, so the children can import them by name.
"""

from __future__ import annotations

__all__ = [
    "PREFIX",
    "RUN",
    "TESTS_DIR",
    "assert_records_match_objects",
    "cli_env",
    "dataset_type",
    "make_ref",
    "quantum_files",
    "race_body",
    "race_puts",
    "race_rounds_worker",
    "records_from_provenance",
    "repo_config",
    "run_cli",
    "upload_text",
    "write_quantum",
]

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from s3qbb.core import DatasetRef, DatasetType, DimensionUniverse
from s3qbb.core.records import DatastoreRecordData
from s3qbb.core.wire import quantum_to_simple
from s3qbb.provenance.files import provenance_key, records_key, report_key
from s3qbb.provenance.model import QuantumProvenanceData

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

    from s3qbb.config import S3EndpointConfig
    from s3qbb.core.quantum import Quantum
    from s3qbb.registry import Registry
    from s3qbb.testing.servers import S3TestEndpoint

PREFIX = "repo"
"""Prefix of the datastore root inside the test bucket."""

RUN = "rel/run"
"""Default output run."""

TESTS_DIR = Path(__file__).resolve().parent
"""This directory: on ``PYTHONPATH`` of CLI subprocesses so they can import `reliability_tasks`."""

_UNIVERSE = DimensionUniverse()


def dataset_type(name: str, storage_class: str = "StructuredDataDict") -> DatasetType:
    """Return a dataset type with dimensions ``visit, detector``."""
    return DatasetType(name, ["visit", "detector"], storage_class, universe=_UNIVERSE)


def make_ref(
    name: str,
    detector: int,
    run: str = RUN,
    *,
    storage_class: str = "StructuredDataDict",
    id: uuid.UUID | None = None,
) -> DatasetRef:
    """Return a resolved ref of visit 1 and a detector (a given ID makes the same ref in every process)."""
    return DatasetRef(
        dataset_type(name, storage_class),
        {"instrument": "Cam", "visit": 1, "detector": detector},
        run,
        id=id,
    )


def root_of(endpoint: S3TestEndpoint) -> str:
    """Return the datastore root URI in the test bucket."""
    return f"s3://{endpoint.bucket}/{PREFIX}"


def repo_config(
    endpoint: S3TestEndpoint | None = None,
    *,
    config: S3EndpointConfig | None = None,
    root: str | None = None,
    cache: bool = False,
    **datastore: Any,
) -> dict[str, Any]:
    """Return a repository configuration mapping for in-process butlers."""
    if config is None:
        assert endpoint is not None
        config = endpoint.config
    if root is None:
        assert endpoint is not None
        root = root_of(endpoint)
    return {"datastore": {"root": root, "endpoint": config, **datastore}, "cache": {"enabled": cache}}


def plain_repo_config(endpoint: S3TestEndpoint, **datastore: Any) -> dict[str, Any]:
    """Return a YAML-ready configuration without credentials (jobs take theirs from the environment)."""
    return {
        "datastore": {
            "root": root_of(endpoint),
            "endpoint": {
                "endpoint_url": endpoint.endpoint_url,
                "region": "us-east-1",
                "addressing_style": "path",
            },
            **datastore,
        },
        "cache": {"enabled": False},
    }


def cli_env(endpoint: S3TestEndpoint, identity: str = "admin") -> dict[str, str]:
    """Return the environment of a batch job: the identity's credentials, no other AWS settings."""
    creds = endpoint.server.credentials(identity)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3QBB_"))}
    pythonpath = [str(TESTS_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        {
            "AWS_ACCESS_KEY_ID": creds.access_key_id,
            "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint.endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join(pythonpath),
        }
    )
    return env


def write_quantum(path: Path, quantum: Quantum) -> Path:
    """Write a quantum description (``SerializedQuantum`` JSON) to a local file."""
    path.write_text(quantum_to_simple(quantum).model_dump_json())
    return path


def upload_text(endpoint: S3TestEndpoint, key: str, text: str) -> str:
    """Write an object through the raw client and return its ``s3://`` URI."""
    endpoint.client.put_object(Bucket=endpoint.bucket, Key=key, Body=text.encode())
    return f"s3://{endpoint.bucket}/{key}"


def run_cli(
    quantum: str | Path,
    task: str,
    config: str | Path,
    env: Mapping[str, str],
    *options: str,
    verbose: int = 0,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m s3qbb.cli run-quantum`` like a batch job, capturing its output."""
    cmd = [
        sys.executable,
        "-m",
        "s3qbb.cli",
        *(["-" + "v" * verbose] if verbose else []),
        "run-quantum",
        str(quantum),
        "--task",
        task,
        "--config",
        str(config),
        *options,
    ]
    return subprocess.run(
        cmd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False, cwd=TESTS_DIR
    )


def quantum_files(endpoint: S3TestEndpoint, quantum_id: uuid.UUID, run: str = RUN) -> dict[str, bytes]:
    """Return the per-quantum files present in the bucket (``records``, ``provenance``, ``report``)."""
    found: dict[str, bytes] = {}
    for kind, key in (
        ("records", records_key(run, quantum_id)),
        ("provenance", provenance_key(run, quantum_id)),
        ("report", report_key(run, quantum_id)),
    ):
        try:
            body = endpoint.client.get_object(Bucket=endpoint.bucket, Key=f"{PREFIX}/{key}")["Body"].read()
        except endpoint.client.exceptions.NoSuchKey:
            continue
        found[kind] = body
    return found


def records_from_provenance(
    endpoint: S3TestEndpoint, quantum_ids: Iterable[uuid.UUID], run: str = RUN
) -> dict[str, DatastoreRecordData]:
    """Merge the datastore records that finished quanta uploaded in their provenance files."""
    merged: dict[str, DatastoreRecordData] = {}
    for qid in quantum_ids:
        body = quantum_files(endpoint, qid, run)["provenance"]
        for name, data in QuantumProvenanceData.from_json(body).datastore_record_data().items():
            merged.setdefault(name, DatastoreRecordData({})).update(data)
    return merged


def assert_records_match_objects(
    endpoint: S3TestEndpoint, registry: Registry, expected: set[uuid.UUID]
) -> None:
    """Every stored dataset of the run is expected, once, and its record matches the object in the bucket."""
    from s3qbb.s3 import checksums

    rows = registry.datasets(run=RUN, stored=True)
    assert sorted(row.id for row in rows) == sorted(expected)  # each exactly once
    for row in rows:
        (record,) = row.records
        body = endpoint.client.get_object(Bucket=endpoint.bucket, Key=f"{PREFIX}/{record.path}")[
            "Body"
        ].read()
        assert record.file_size == len(body)
        assert record.checksum is not None
        recorded = checksums.parse(record.checksum)
        assert recorded.same_value(checksums.compute(recorded.algorithm, body))


# ----------------------------------------------------------- child processes


def race_worker(
    config: S3EndpointConfig,
    root: str,
    ref_id: uuid.UUID,
    index: int,
    barrier: Barrier,
    results: Queue[tuple[int, str]],
) -> None:
    """Put one output through an S3 datastore of this process, at the barrier's signal."""
    from s3qbb.datastores.s3 import S3Datastore
    from s3qbb.errors import DatasetExistsError

    ref = make_ref("race", 1, id=ref_id)
    store = S3Datastore(root, config=config)
    store.bucket.client.list_buckets()  # The client exists and is connected before the race starts.
    outcome = "ok"
    try:
        barrier.wait(timeout=60)
        store.put({"writer": index, "pad": "x" * index}, ref)
    except DatasetExistsError:
        outcome = "exists"
    except Exception as err:
        outcome = f"error {type(err).__name__}: {err}"
    finally:
        store.close()
    results.put((index, outcome))


def multipart_then_sigkill(
    config: S3EndpointConfig, root: str, ref_id: uuid.UUID, parts: int, token: str | None = None
) -> None:
    """Start a multipart put of 24 MiB and SIGKILL this process as part ``parts + 1`` is about to be sent.

    ``token`` is the text of the write token the datastore writes with (a random one by default).
    """
    import signal
    from typing import cast

    from s3qbb.core.attempt import WriteToken
    from s3qbb.datastores.s3 import S3Datastore

    store = S3Datastore(root, config=config, max_workers=1)
    parsed = WriteToken.parse(token)
    if parsed is not None:
        store.write_token = parsed
    sent = 0

    def before_send(**kwargs: Any) -> None:
        nonlocal sent
        sent += 1
        if sent > parts:
            os.kill(os.getpid(), signal.SIGKILL)

    store.bucket.client.meta.events.register("before-send.s3.UploadPart", cast("Any", before_send))
    store.put(b"\x5a" * (24 * 1024**2), make_ref("big", 1, storage_class="Bytes", id=ref_id))
    raise AssertionError("the put was not interrupted")  # pragma: no cover


def race_puts(
    endpoint: S3TestEndpoint, key: str, racers: int, **conditions: Any
) -> tuple[list[int], list[str]]:
    """Let ``racers`` threads put ``key`` at once with ``conditions``.

    Racer ``i`` puts ``b"racer <i>"``. Returns who was told "ok" and the
    error codes of the others.
    """
    endpoint.client.list_buckets()  # connect first
    barrier = threading.Barrier(racers)
    wins: list[int] = []
    errors: list[str] = []

    def put(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            endpoint.client.put_object(
                Bucket=endpoint.bucket, Key=key, Body=b"racer %d" % index, **conditions
            )
        except botocore.exceptions.ClientError as err:
            errors.append(err.response["Error"]["Code"])
        else:
            wins.append(index)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return wins, errors


def race_body(round_no: int, writer: int, kind: str, size: int) -> bytes:
    """Return the body a writer puts in a round of `race_rounds_worker` (writers share it when identical)."""
    seed = f"{round_no}|" if kind == "identical" else f"{round_no}|{writer}|"
    return (seed.encode() * (size // len(seed) + 1))[:size]


def race_rounds_worker(
    config: S3EndpointConfig,
    root: str,
    rounds: list[tuple[uuid.UUID, str, int]],
    index: int,
    barrier: Barrier,
    results: Queue[tuple[int, int, str, int, str | None, str]],
) -> None:
    """Put one output per round (``(ref id, "different" or "identical", size)``) at the barrier's signal.

    This process is one quantum (one write token for all rounds). For each round it
    reports ``(round, writer, outcome, recorded size, recorded checksum, token)``;
    outcome is ``ok``, ``exists`` (`DatasetExistsError`) or ``error ...``.
    """
    from s3qbb.datastores.s3 import S3Datastore
    from s3qbb.errors import DatasetExistsError

    store = S3Datastore(root, config=config)
    # The client exists and is connected before the race starts.
    if config.transport == "boto3":
        store.bucket.client.list_buckets()
    else:
        store.bucket.head(f"{PREFIX}/warm-up")
    token = str(store.write_token)
    try:
        for round_no, (ref_id, kind, size) in enumerate(rounds):
            ref = make_ref("race", round_no, storage_class="Bytes", id=ref_id)
            body = race_body(round_no, index, kind, size)
            outcome, recorded_size, checksum = "ok", -1, None
            barrier.wait(timeout=120)
            try:
                store.put(body, ref)
            except DatasetExistsError:
                outcome = "exists"
            except Exception as err:
                outcome = f"error {type(err).__name__}: {err}"
            else:
                (info,) = store.records.get(ref.id)
                recorded_size, checksum = info.file_size, info.checksum
            results.put((round_no, index, outcome, recorded_size, checksum, token))
    finally:
        store.close()
