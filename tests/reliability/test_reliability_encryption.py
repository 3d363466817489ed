"""Server-side encryption: SSE-S3 and SSE-KMS are requested on every write, and only where S3 takes them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import botocore.session
import pytest
from reliability_helpers import PREFIX, make_ref, repo_config

from s3qbb.butler import QuantumBackedButler
from s3qbb.config import S3EndpointConfig
from s3qbb.core.quantum import Quantum
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.testing.servers import S3TestEndpoint

MIB = 1024**2
SSE = "x-amz-server-side-encryption"
KMS_KEY = "x-amz-server-side-encryption-aws-kms-key-id"
WRITES_TAKING_SSE = {"PutObject", "CreateMultipartUpload"}


@contextmanager
def recorded_headers(client: Any) -> Iterator[list[tuple[str, dict[str, str]]]]:
    """Record ``(operation, request headers)`` of every call a client makes (``before-call.s3.*``)."""
    calls: list[tuple[str, dict[str, str]]] = []

    def hook(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        headers = {str(k).lower(): str(v) for k, v in params.get("headers", {}).items()}
        calls.append((model.name, headers))

    client.meta.events.register("before-call.s3.*", cast("Any", hook), unique_id="s3qbb-test-sse")
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call.s3.*", unique_id="s3qbb-test-sse")


def _run_quantum(endpoint: S3TestEndpoint, config: S3EndpointConfig) -> tuple[Quantum, list[tuple[str, Any]]]:
    """Run a quantum writing a small and a multipart output, recording the headers of its requests."""
    small = make_ref("small", 1)
    big = make_ref("big", 1, storage_class="Bytes")
    quantum = Quantum(taskLabel="sse", outputs=[small, big])
    butler = QuantumBackedButler.initialize(
        repo_config(endpoint, config=config), quantum, small.datasetType.dimensions.universe
    )
    client = butler._datastore.bucket.client  # type: ignore[attr-defined]
    with recorded_headers(client) as calls:
        butler.put({"a": 1}, small)
        butler.put(b"\x00" * (11 * MIB), big)  # three parts of 5 MiB at most
        finish = butler.finish()
    assert finish.status == "succeeded" and len(finish.uris) == 3
    return quantum, calls


def _check_headers(calls: list[tuple[str, dict[str, str]]], expected: dict[str, str]) -> None:
    by_op: dict[str, int] = {}
    for operation, headers in calls:
        by_op[operation] = by_op.get(operation, 0) + 1
        sse = {k: v for k, v in headers.items() if k.startswith(SSE)}
        if operation in WRITES_TAKING_SSE:
            assert sse == expected, (operation, headers)
        else:
            # UploadPart and CompleteMultipartUpload accept only SSE-C headers: the upload's
            # encryption is fixed by CreateMultipartUpload. Reads carry none either.
            assert sse == {}, (operation, headers)
    # 1 small dataset + 3 sidecars (records, provenance, report) + the claim of the multipart
    # upload (of 3 parts).
    assert by_op["PutObject"] == 5
    assert by_op["CreateMultipartUpload"] == 1
    assert by_op["UploadPart"] == 3
    assert by_op["CompleteMultipartUpload"] == 1


def _stored_encryption(endpoint: S3TestEndpoint) -> dict[str, dict[str, Any]]:
    out = {}
    paginator = endpoint.client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=endpoint.bucket, Prefix=PREFIX):
        for item in page.get("Contents", []):
            head = endpoint.client.head_object(Bucket=endpoint.bucket, Key=item["Key"])
            out[item["Key"]] = {k: head.get(k) for k in ("ServerSideEncryption", "SSEKMSKeyId")}
    return out


def _multipart(config: S3EndpointConfig, **updates: Any) -> S3EndpointConfig:
    return config.model_copy(
        update={"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB, **updates}
    )


@pytest.mark.seaweedfs
def test_sse_s3_is_requested_on_every_write(seaweedfs_endpoint: S3TestEndpoint) -> None:
    config = _multipart(seaweedfs_endpoint.config, server_side_encryption="AES256")
    _, calls = _run_quantum(seaweedfs_endpoint, config)
    _check_headers(calls, {SSE: "AES256"})
    stored = _stored_encryption(seaweedfs_endpoint)
    assert len(stored) == 5  # 2 datasets + 3 sidecars
    assert {v["ServerSideEncryption"] for v in stored.values()} == {"AES256"}, stored


@pytest.mark.moto_server
def test_sse_kms_with_a_key_id_is_requested_on_every_write(moto_endpoint: S3TestEndpoint) -> None:
    key_id = "arn:aws:kms:us-east-1:123456789012:key/0b1c2d3e-0000-4000-8000-000000000001"
    config = _multipart(moto_endpoint.config, server_side_encryption="aws:kms", sse_kms_key_id=key_id)
    _, calls = _run_quantum(moto_endpoint, config)
    _check_headers(calls, {SSE: "aws:kms", KMS_KEY: key_id})
    stored = _stored_encryption(moto_endpoint)
    assert len(stored) == 5
    assert {v["ServerSideEncryption"] for v in stored.values()} == {"aws:kms"}, stored


@pytest.mark.moto_server
def test_unconditional_writes_carry_encryption_too(moto_endpoint: S3TestEndpoint) -> None:
    config = moto_endpoint.config.model_copy(update={"server_side_encryption": "AES256"})
    store = S3Datastore(f"s3://{moto_endpoint.bucket}/{PREFIX}", config=config)
    with recorded_headers(store.bucket.client) as calls:
        store.bucket.put_raw(f"{PREFIX}/owned.json", b"{}")
    assert [(op, h.get(SSE)) for op, h in calls] == [("PutObject", "AES256")]
    store.close()


@pytest.mark.moto_server
def test_no_encryption_headers_unless_configured(moto_endpoint: S3TestEndpoint) -> None:
    _, calls = _run_quantum(moto_endpoint, _multipart(moto_endpoint.config))
    assert all(not any(k.startswith(SSE) for k in headers) for _, headers in calls)


def test_s3_api_takes_sse_s3_and_kms_on_create_only() -> None:
    # Why UploadPart requests carry no SSE-S3/KMS parameters: the API has none for them.
    model = botocore.session.get_session().get_service_model("s3")

    def members(op: str) -> set[str]:
        shape = model.operation_model(op).input_shape
        assert shape is not None
        return set(shape.members)

    for op in WRITES_TAKING_SSE:
        assert {"ServerSideEncryption", "SSEKMSKeyId"} <= members(op)
    for op in ("UploadPart", "CompleteMultipartUpload"):
        assert not {"ServerSideEncryption", "SSEKMSKeyId"} & members(op)
        assert "SSECustomerAlgorithm" in members(op)


def test_encryption_is_configurable_from_the_environment() -> None:
    config = S3EndpointConfig.from_env(
        {"S3QBB_S3_SERVER_SIDE_ENCRYPTION": "aws:kms", "S3QBB_S3_SSE_KMS_KEY_ID": "alias/s3qbb"}
    )
    assert (config.server_side_encryption, config.sse_kms_key_id) == ("aws:kms", "alias/s3qbb")
    with pytest.raises(ValueError, match="sse_kms_key_id needs"):
        S3EndpointConfig(server_side_encryption="AES256", sse_kms_key_id="alias/s3qbb")
