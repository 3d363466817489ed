"""Crashes: a failing task, a quantum killed mid-run, a put killed mid-multipart; cleaning up after them."""

from __future__ import annotations

import datetime
import json
import multiprocessing
import signal
from pathlib import Path

import pytest
import yaml
from reliability_helpers import (
    PREFIX,
    RUN,
    cli_env,
    make_ref,
    multipart_then_sigkill,
    plain_repo_config,
    quantum_files,
    repo_config,
    root_of,
    run_cli,
    write_quantum,
)

from s3qbb.batch.execution import EXIT_TASK_FAILURE
from s3qbb.core.attempt import WriteToken
from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.core.quantum import Quantum
from s3qbb.datastores.cleanup import abort_stale_uploads
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import ConfigError, DatasetExistsError, TransientStorageError
from s3qbb.provenance.files import records_prefix
from s3qbb.provenance.model import QuantumExecutionReport, QuantumProvenanceData
from s3qbb.s3 import make_retry_policy, new_client
from s3qbb.s3.objects import WRITE_PENDING, WRITE_TOKEN
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.faults import FaultInjector
from s3qbb.testing.servers import S3TestEndpoint

MIB = 1024**2


def _write_config(endpoint: S3TestEndpoint, workdir: Path) -> Path:
    path = workdir / "butler.yaml"
    path.write_text(yaml.safe_dump(plain_repo_config(endpoint)))
    return path


def _uploads(endpoint: S3TestEndpoint, prefix: str = PREFIX) -> list[tuple[str, str]]:
    response = endpoint.client.list_multipart_uploads(Bucket=endpoint.bucket, Prefix=prefix)
    return [(u["Key"], u["UploadId"]) for u in response.get("Uploads", [])]


# ------------------------------------------------------------- failing task


@pytest.mark.seaweedfs
def test_failing_task_uploads_failed_records_provenance_and_report(
    seaweedfs_endpoint: S3TestEndpoint, tmp_path: Path
) -> None:
    outputs = [make_ref("partial", d) for d in (1, 2)]
    quantum = Quantum(taskLabel="fail", taskName="reliability_tasks.fail", outputs=outputs)
    proc = run_cli(
        write_quantum(tmp_path / "q.json", quantum),
        "reliability_tasks:fail",
        _write_config(seaweedfs_endpoint, tmp_path),
        cli_env(seaweedfs_endpoint),
    )
    assert proc.returncode == EXIT_TASK_FAILURE, proc.stderr
    assert "the task exploded on purpose" in proc.stderr

    files = quantum_files(seaweedfs_endpoint, quantum.id)
    assert set(files) == {"records", "provenance", "report"}
    assert files["records"].startswith(b"SQLite format 3\x00")
    report = QuantumExecutionReport.from_json(files["report"])
    assert report.status == "failed"
    assert report.error is not None
    assert report.error.type.endswith("ValueError")
    assert "the task exploded on purpose" in report.error.message
    provenance = QuantumProvenanceData.from_json(files["provenance"])
    assert provenance.actual_outputs == {outputs[0].id}  # the output written before the failure
    assert provenance.predicted_outputs == {r.id for r in outputs}
    backdoor = S3Backdoor(seaweedfs_endpoint.client, seaweedfs_endpoint.bucket, PREFIX)
    assert backdoor.has_artifact(outputs[0]) and not backdoor.has_artifact(outputs[1])


# ------------------------------------------------------- killed quantum process


def make_killed_quantum(endpoint: S3TestEndpoint, workdir: Path) -> tuple[Quantum, list[DatasetRef]]:
    """Run a quantum whose process is SIGKILLed after writing all outputs but the last.

    The scenario ``s3qbb ingest --recover`` must handle: outputs in the bucket,
    no ``_records`` files for the quantum (nor any other quantum of the run), only
    its attempt lease.

    Parameters
    ----------
    endpoint : `S3TestEndpoint`
        Server and fresh bucket; the datastore root is ``s3://<bucket>/repo``, run `RUN`.
    workdir : `pathlib.Path`
        Directory for the quantum description and the configuration file.

    Returns
    -------
    quantum : `Quantum`
        The killed quantum (three outputs predicted).
    written : `list` [`DatasetRef`]
        The outputs it wrote before dying (the first two).
    """
    outputs = [make_ref("killed", d) for d in (1, 2, 3)]
    quantum = Quantum(taskLabel="killed", taskName="reliability_tasks.write_some_then_die", outputs=outputs)
    proc = run_cli(
        write_quantum(workdir / f"{quantum.id}.json", quantum),
        "reliability_tasks:write_some_then_die",
        _write_config(endpoint, workdir),
        cli_env(endpoint),
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    return quantum, outputs[:-1]


@pytest.mark.seaweedfs
def test_killed_quantum_leaves_outputs_without_records(
    seaweedfs_endpoint: S3TestEndpoint, tmp_path: Path
) -> None:
    quantum, written = make_killed_quantum(seaweedfs_endpoint, tmp_path)
    backdoor = S3Backdoor(seaweedfs_endpoint.client, seaweedfs_endpoint.bucket, PREFIX)
    for ref in written:
        assert json.loads(backdoor.read_artifact(ref)) == {"detector": ref.dataId["detector"]}
    (missing,) = set(quantum.output_refs()) - set(written)
    assert not backdoor.has_artifact(missing)
    assert quantum_files(seaweedfs_endpoint, quantum.id) == {}
    stored = backdoor.keys()
    # Only the attempt's lease, still saying "running" (its process is gone, which a retry sees).
    leases = [k for k in stored if k.startswith(f"{PREFIX}/{records_prefix(RUN)}_attempts/")]
    assert (
        len(leases) == 1
        and json.loads(
            seaweedfs_endpoint.client.get_object(Bucket=seaweedfs_endpoint.bucket, Key=leases[0])[
                "Body"
            ].read()
        )["state"]
        == "running"
    )
    assert [k for k in stored if k.startswith(f"{PREFIX}/{records_prefix(RUN)}") and k not in leases] == []
    assert len(stored) == len(written) + 1


# ------------------------------------------------------ interrupted multipart


def _multipart_store(endpoint: S3TestEndpoint, sleeps: list[float] | None = None) -> S3Datastore:
    config = endpoint.config.model_copy(
        update={"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB, "max_concurrency": 1}
    )
    retry = make_retry_policy(config, sleep=(sleeps if sleeps is not None else []).append)
    return S3Datastore(root_of(endpoint), config=config, retry=retry, max_workers=1)


@pytest.mark.seaweedfs
def test_sigkill_during_multipart_put_leaves_a_placeholder_and_cleanup_aborts_the_upload(
    seaweedfs_endpoint: S3TestEndpoint,
) -> None:
    store = _multipart_store(seaweedfs_endpoint)
    ref = make_ref("big", 1, storage_class="Bytes")
    killed = WriteToken.new()
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(
        target=multipart_then_sigkill, args=(store.config, store.root, ref.id, 2, str(killed))
    )
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL

    # The only visible object is the claim's placeholder: marked pending, never a dataset.
    backdoor = S3Backdoor(seaweedfs_endpoint.client, seaweedfs_endpoint.bucket, PREFIX)
    ((key, upload_id),) = _uploads(seaweedfs_endpoint)
    assert backdoor.keys() == [key]
    head = seaweedfs_endpoint.client.head_object(Bucket=seaweedfs_endpoint.bucket, Key=key)
    assert head["Metadata"] == {WRITE_TOKEN: str(killed), WRITE_PENDING: "1"}
    assert str(ref.id) in key
    parts = seaweedfs_endpoint.client.list_parts(
        Bucket=seaweedfs_endpoint.bucket, Key=key, UploadId=upload_id
    )
    assert [p["PartNumber"] for p in parts.get("Parts", [])] == [1, 2]

    # A fresh upload may belong to a live writer: left alone.
    assert abort_stale_uploads(store, "", older_than_s=3600) == []
    assert _uploads(seaweedfs_endpoint) == [(key, upload_id)]
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    assert abort_stale_uploads(store, "", older_than_s=3600, now=later) == [(key, upload_id)]
    assert _uploads(seaweedfs_endpoint) == []
    assert store.stats.snapshot()["requests"]["AbortMultipartUpload"] == 1

    # Another quantum may not take the placeholder; the next attempt of the killed quantum replaces it.
    with pytest.raises(DatasetExistsError, match="uploading it"):
        store.put(b"\x01" * (24 * MIB), ref)
    retry = _multipart_store(seaweedfs_endpoint)
    retry.write_token = WriteToken.new(killed.quantum_id)
    retry.put(b"\x02" * (24 * MIB), ref)
    assert retry.get(ref) == b"\x02" * (24 * MIB)
    head = seaweedfs_endpoint.client.head_object(Bucket=seaweedfs_endpoint.bucket, Key=key)
    assert head["Metadata"][WRITE_TOKEN] == str(retry.write_token) and WRITE_PENDING not in head["Metadata"]
    store.close()
    retry.close()


@pytest.mark.seaweedfs
def test_failure_between_parts_aborts_the_upload_itself(seaweedfs_endpoint: S3TestEndpoint) -> None:
    sleeps: list[float] = []
    store = _multipart_store(seaweedfs_endpoint, sleeps)
    ref = make_ref("big", 2, storage_class="Bytes")
    client = new_client(store.config)  # faults on a client of this test only
    store._client = client
    script = {"UploadPart": ["ok", "ok"]}  # two parts go through, every later attempt is reset
    faults = FaultInjector(client, script, rate=1.0, kinds=["reset"], operations=["UploadPart"])
    with faults, pytest.raises(TransientStorageError):
        store.put(b"\x01" * (12 * MIB), ref)
    assert faults.injected["reset"] == store.config.retry.max_attempts  # part 3, every attempt
    assert len(sleeps) == store.config.retry.max_attempts - 1  # backoffs were asked for, not slept
    assert _uploads(seaweedfs_endpoint) == []
    assert S3Backdoor(seaweedfs_endpoint.client, seaweedfs_endpoint.bucket, PREFIX).keys() == []
    assert not store.knows(ref)
    store.close()
    client.close()


@pytest.mark.parametrize(
    "server",
    [
        pytest.param("moto", marks=pytest.mark.moto_server),
        pytest.param("seaweedfs", marks=pytest.mark.seaweedfs),
    ],
)
def test_abort_stale_uploads_pages_and_keeps_other_prefixes(
    server: str, request: pytest.FixtureRequest
) -> None:
    endpoint: S3TestEndpoint = request.getfixturevalue(f"{server}_endpoint")
    client, bucket = endpoint.client, endpoint.bucket
    made = {
        (key, client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])
        for key in [f"{PREFIX}/{RUN}/a{i % 2}.bin" for i in range(5)]
    }
    other = client.create_multipart_upload(Bucket=bucket, Key="elsewhere/x.bin")["UploadId"]
    store = S3Datastore(root_of(endpoint), config=endpoint.config)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)

    aborted = abort_stale_uploads(store, f"{RUN}/", older_than_s=60, now=later, page_size=2)
    assert sorted(aborted) == sorted(made)
    assert _uploads(endpoint, PREFIX) == []
    assert _uploads(endpoint, "elsewhere/") == [("elsewhere/x.bin", other)]
    assert abort_stale_uploads(store.bucket, "", older_than_s=0, now=later) == [("elsewhere/x.bin", other)]
    store.close()


def test_abort_stale_uploads_rejects_bad_arguments(moto_endpoint: S3TestEndpoint) -> None:
    from s3qbb.datastores.memory import InMemoryDatastore

    store = S3Datastore(root_of(moto_endpoint), config=moto_endpoint.config)
    with pytest.raises(ValueError, match="negative"):
        abort_stale_uploads(store, "", older_than_s=-1)
    with pytest.raises(ValueError, match="max_passes"):
        abort_stale_uploads(store, "", max_passes=0)
    with pytest.raises(ConfigError, match="no objects in an S3 bucket"):
        abort_stale_uploads(InMemoryDatastore(), "")
    store.close()


def test_cleanup_of_a_datastore_behind_the_cache_tier(moto_endpoint: S3TestEndpoint) -> None:
    from s3qbb.repo import build_datastore, load_repo_config

    datastore = build_datastore(load_repo_config(repo_config(moto_endpoint, cache=True)))
    key = f"{PREFIX}/{RUN}/c.bin"
    upload_id = moto_endpoint.client.create_multipart_upload(Bucket=moto_endpoint.bucket, Key=key)["UploadId"]
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
    assert abort_stale_uploads(datastore, "", 60, now=later) == [(key, upload_id)]
    # Aborting what is gone already is not an error.
    assert not S3Datastore(root_of(moto_endpoint), config=moto_endpoint.config).bucket.abort_upload(
        key, upload_id
    )
    datastore.close()
