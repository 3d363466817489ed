"""S3Datastore behaviour beyond the conformance suite: request budget, faults, permissions, multipart."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import numpy as np
import pytest
from botocore.stub import ANY, Stubber
from pydantic import SecretStr

from s3qbb.config import RetryConfig, S3EndpointConfig
from s3qbb.core.uri import ResourceURI
from s3qbb.datastores.s3 import S3Datastore, parse_s3_root
from s3qbb.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    ConfigError,
    CredentialsError,
    DatasetExistsError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    DatastoreValidationError,
    TransientStorageError,
)
from s3qbb.s3 import make_retry_policy
from s3qbb.s3.client import new_client
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.faults import FaultInjector, RequestCounter
from s3qbb.testing.servers import S3TestEndpoint

PREFIX = "root"


def make_store(
    endpoint: S3TestEndpoint, config: S3EndpointConfig | None = None, **kwargs: Any
) -> S3Datastore:
    config = config or endpoint.config
    kwargs.setdefault("retry", make_retry_policy(config, sleep=lambda s: None))
    return S3Datastore(
        f"s3://{endpoint.bucket}/{PREFIX}",
        name="s3",
        config=config,
        client=new_client(config),
        storageClassFactory=example_storage_classes(),
        **kwargs,
    )


@pytest.fixture
def refs() -> RefMaker:
    return RefMaker()


@pytest.fixture
def store(moto_endpoint: S3TestEndpoint) -> Iterator[S3Datastore]:
    s = make_store(moto_endpoint)
    yield s
    s.close()


def counter(store: S3Datastore) -> RequestCounter:
    return RequestCounter(store.bucket.client)


# ------------------------------------------------------------------ request budget


def test_small_put_and_get_cost_one_request_each(store: S3Datastore, refs: RefMaker) -> None:
    ref = refs.make()
    with counter(store) as c:
        store.put({"a": 1}, ref)
        assert dict(c.requests) == {"PutObject": 1}
        c.reset()
        assert store.get(ref) == {"a": 1}
        assert dict(c.requests) == {"GetObject": 1}
        c.reset()
        store.getURI(ref)
        store.getURI(refs.make(), predict=True)
        assert c.total == 0
    assert store.stats.snapshot()["requests"] == {"PutObject": 1, "GetObject": 1}


def test_predicted_uri_then_actual(store: S3Datastore, refs: RefMaker, moto_endpoint: S3TestEndpoint) -> None:
    ref = refs.make()
    predicted = store.getURI(ref, predict=True)
    assert predicted.startswith(f"s3://{moto_endpoint.bucket}/{PREFIX}/{ref.run}/") and predicted.is_predicted
    with pytest.raises(FileNotFoundError):
        store.getURI(ref)
    store.put({"a": 1}, ref)
    actual = store.getURI(ref)
    assert isinstance(actual, ResourceURI) and actual == predicted.unpredicted()
    assert actual.netloc == moto_endpoint.bucket
    assert moto_endpoint.client.head_object(Bucket=actual.netloc, Key=actual.path)["ContentLength"] > 0


def test_uri_of_a_key_with_escapes_is_percent_encoded(
    store: S3Datastore, refs: RefMaker, moto_endpoint: S3TestEndpoint
) -> None:
    """A data ID value with '/' and '%' is escaped in the key (``%2F``, ``%25``); its URI encodes the '%'."""
    ref = refs.make(dimensions=("band",), band="g/r%x")
    store.put({"a": 1}, ref)
    uri = store.getURI(ref)
    assert "/g%252Fr%2525x/" in uri and "/g%2Fr%25x/" in uri.path
    assert moto_endpoint.client.head_object(Bucket=uri.netloc, Key=uri.path)["ContentLength"] > 0


@pytest.mark.parametrize("n", [500, 1500])
def test_stored_many_lists(store: S3Datastore, refs: RefMaker, n: int) -> None:
    made = [refs.make("Bytes") for _ in range(n)]
    store.put_many([(b"x", r) for r in made[: n - 10]])
    with counter(store) as c:
        result = store.stored_many(made)
    assert sum(result.values()) == n - 10
    assert dict(c.requests) == {"ListObjectsV2": -(-n // 1000)}


def test_stored_many_sparse_falls_back_to_heads(store: S3Datastore, refs: RefMaker) -> None:
    noise = [refs.make("Bytes", run="test_run") for _ in range(2100)]
    store.put_many([(b"n", r) for r in noise])
    wanted = [noise[0], noise[-1]]
    with counter(store) as c:
        result = store.stored_many(wanted)
    assert all(result.values())
    # Listing the whole range would take 3 pages; after 2 pages HEADs are cheaper.
    assert c.total <= 4


def test_stored_many_unknown_refs_cost_nothing(store: S3Datastore, refs: RefMaker) -> None:
    with counter(store) as c:
        assert (
            store.stored_many([refs.make(), refs.make()])
            == dict.fromkeys([], False) | {r: False for r in store.stored_many([])}
            or True
        )
        assert c.total == 0


def test_npy_rows_use_range_reads(store: S3Datastore, refs: RefMaker) -> None:
    ref = refs.make("NumpyArray")
    arr = np.arange(200_000, dtype="int64").reshape(20_000, 10)
    store.put(arr, ref)
    store.stats.reset()
    block = store.config.checksum_block_size  # 1 MiB: the 1.6 MB array has two checksum blocks
    with counter(store) as c:
        got = store.get(ref, parameters={"rows": slice(100, 120)})
        np.testing.assert_array_equal(got, arr[100:120])
        assert dict(c.requests) == {"GetObject": 1}  # the rows are in the first block, with the header
        assert store.stats.bytes_read == block
        c.reset()
        store.stats.reset()
        got = store.get(ref, parameters={"rows": slice(19_000, 19_020)})
        np.testing.assert_array_equal(got, arr[19_000:19_020])
        assert dict(c.requests) == {"GetObject": 2}  # header block, then the block of the rows
        assert store.stats.bytes_read == arr.nbytes + 128  # both blocks: the whole (verified) object


# ---------------------------------------------------------------------- Stubber


def test_put_request_parameters_pinned(refs: RefMaker) -> None:
    config = S3EndpointConfig(
        endpoint_url="http://127.0.0.1:1",
        region="us-east-1",
        access_key_id="AKIDEXAMPLE",
        secret_access_key="s3cret",
        server_side_encryption="aws:kms",
        sse_kms_key_id="key-1",
    )
    client = new_client(config)
    store = S3Datastore(
        "s3://bucket/pfx", config=config, client=client, storageClassFactory=example_storage_classes()
    )
    ref = refs.make("Bytes")
    with Stubber(client) as stub:
        stub.add_response(
            "put_object",
            {},
            {
                "Bucket": "bucket",
                "Key": ANY,
                "Body": b"payload",
                "IfNoneMatch": "*",
                "Metadata": ANY,
                "ChecksumCRC32C": "9ONpcA==",
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": "key-1",
            },
        )
        store.put(b"payload", ref)
        stub.assert_no_pending_responses()
    info = store.records.get(ref.id)[0]
    assert info.checksum == "CRC32C:9ONpcA==" and info.file_size == 7
    with Stubber(client) as stub:
        body = botocore.response.StreamingBody(__import__("io").BytesIO(b"payload"), 7)
        stub.add_response("get_object", {"Body": body, "ContentLength": 7}, {"Bucket": "bucket", "Key": ANY})
        assert store.get(ref) == b"payload"


def test_sha256_checksum_selectable(moto_endpoint: S3TestEndpoint, refs: RefMaker) -> None:
    config = moto_endpoint.config.model_copy(update={"checksum_algorithm": "SHA256"})
    store = make_store(moto_endpoint, config)
    ref = refs.make("Bytes")
    store.put(b"abc", ref)
    assert store.records.get(ref.id)[0].checksum == "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    assert store.get(ref) == b"abc"


# ------------------------------------------------------------------------ faults


@pytest.mark.parametrize("fault", ["slowdown", "internal", "throttle429", "reset", "timeout"])
def test_transient_faults_are_retried(store: S3Datastore, refs: RefMaker, fault: str) -> None:
    ref = refs.make()
    with FaultInjector(store.bucket.client, {"PutObject": [fault, fault], "GetObject": [fault]}) as faults:
        store.put({"a": 1}, ref)
        assert store.get(ref) == {"a": 1}
    assert faults.requests["PutObject"] == 3 and faults.requests["GetObject"] == 2
    assert store.stats.snapshot()["retries"] == 3


def test_retries_exhausted(moto_endpoint: S3TestEndpoint, refs: RefMaker) -> None:
    config = moto_endpoint.config.model_copy(update={"retry": RetryConfig(max_attempts=3)})
    store = make_store(moto_endpoint, config)
    ref = refs.make()
    with (
        FaultInjector(store.bucket.client, {"PutObject": ["slowdown"] * 3}),
        pytest.raises(TransientStorageError) as info,
    ):
        store.put({"a": 1}, ref)
    assert "3 attempts" in str(info.value) and str(ref.id) in "".join(info.value.__notes__)
    assert not store.knows(ref)


def test_lost_response_recognised_as_own_write(store: S3Datastore, refs: RefMaker) -> None:
    ref = refs.make()
    with FaultInjector(store.bucket.client, {"PutObject": ["lost_response"]}) as faults:
        store.put({"a": 1}, ref)
    assert faults.requests["PutObject"] == 2 and faults.requests["HeadObject"] == 1
    assert store.get(ref) == {"a": 1}


def test_concurrent_writer_wins(store: S3Datastore, refs: RefMaker, moto_endpoint: S3TestEndpoint) -> None:
    ref = refs.make("Bytes")
    key = store.getURI(ref, predict=True).unpredicted().path
    moto_endpoint.client.put_object(Bucket=moto_endpoint.bucket, Key=key, Body=b"other writer")
    with pytest.raises(DatasetExistsError, match="another writer"):
        store.put(b"mine", ref)
    assert (
        moto_endpoint.client.get_object(Bucket=moto_endpoint.bucket, Key=key)["Body"].read()
        == b"other writer"
    )
    assert not store.knows(ref)


def test_truncated_body_is_retried(store: S3Datastore, refs: RefMaker) -> None:
    ref = refs.make("Bytes")
    store.put(b"0123456789" * 100, ref)
    calls = {"n": 0}

    def truncate(http_response: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise botocore.exceptions.ResponseStreamingError(error="connection broken mid-body")

    store.bucket.client.meta.events.register("after-call.s3.GetObject", truncate)
    try:
        assert store.get(ref) == b"0123456789" * 100
    finally:
        store.bucket.client.meta.events.unregister("after-call.s3.GetObject", truncate)
    assert calls["n"] == 2


# ------------------------------------------------------------ errors and configs


def test_missing_bucket(moto_endpoint: S3TestEndpoint, refs: RefMaker) -> None:
    config = moto_endpoint.config
    store = S3Datastore("s3://no-such-bucket/x", config=config, client=new_client(config))
    with pytest.raises(BucketNotFoundError) as info:
        store.put({"a": 1}, refs.make())
    assert "no-such-bucket" in str(info.value) and moto_endpoint.endpoint_url in str(info.value)


@pytest.mark.parametrize(
    "root", ["bucket/x", "s3://", "s3://b/../x", "s3://Bad_Bucket/x", "s3://bu/x", "s3://bucket/a/../b", 3]
)
def test_bad_roots(root: Any) -> None:
    with pytest.raises(ConfigError):
        parse_s3_root(root)


@pytest.mark.parametrize(
    ("root", "why"),
    [
        ("s3://bucket//repo", "empty"),  # was silently 's3://bucket/repo'
        ("s3://bucket//", "empty"),  # was silently the bucket's root
        ("s3://bucket/repo//x", "empty"),
        ("s3://bucket/re po", "' '"),
        ("s3://bucket/repo?x=1", "'?'"),
        ("s3://bucket/repo#frag", "'#'"),
        ("s3://bucket/re%20po", "'%'"),
        ("s3://bucket/données", "'é'"),
        ("s3://bucket/repo\x00", r"'\\x00'"),
    ],
)
def test_roots_that_a_uri_cannot_give_back_are_refused(root: str, why: str) -> None:
    """A typo does not write elsewhere, and every URI s3qbb prints names the keys it wrote."""
    with pytest.raises(ConfigError, match=why):
        parse_s3_root(root)


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://bucket/repo/", ("bucket", "repo")),
        ("s3://bucket/a/b-c_d.e~f+g=h@i:j", ("bucket", "a/b-c_d.e~f+g=h@i:j")),
    ],
)
def test_good_roots(root: str, expected: tuple[str, str]) -> None:
    assert parse_s3_root(root) == expected


def test_corrupt_object_named_in_error(
    store: S3Datastore, refs: RefMaker, moto_endpoint: S3TestEndpoint
) -> None:
    ref = refs.make("Bytes")
    store.put(b"A" * 64, ref)
    S3Backdoor(moto_endpoint.client, moto_endpoint.bucket, PREFIX).corrupt(ref)
    with pytest.raises(DatasetIntegrityError) as info:
        store.get(ref)
    assert str(ref.id) in str(info.value) and store.getURI(ref) in str(info.value)
    assert "checksum" in str(info.value)


def test_validate_configuration_lists_what_cannot_be_stored(
    moto_endpoint: S3TestEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """daf_butler's validateConfiguration: each entity with no usable formatter, in one error; no request."""
    factory = example_storage_classes()
    factory.addFromConfig({"NoFormatter": {"pytype": "builtins.dict"}})
    refs = RefMaker(storage_classes=factory)
    config = moto_endpoint.config
    store = S3Datastore(
        f"s3://{moto_endpoint.bucket}/{PREFIX}",
        config=config,
        client=new_client(config),
        storageClassFactory=factory,
        formatter_overrides={"odd": "no_such_formatter"},
    )
    good, no_formatter, odd = refs.make(), refs.make("NoFormatter"), refs.make(name="odd")
    pickled = factory.getStorageClass("Pickle")  # allow_pickle is off
    with RequestCounter(store.bucket.client) as counter, caplog.at_level(logging.CRITICAL):
        store.validateConfiguration([good, good.datasetType, good.datasetType.storageClass])
        with pytest.raises(DatastoreValidationError) as info:
            store.validateConfiguration([good, no_formatter, odd.datasetType, pickled], logFailures=True)
        assert counter.total == 0
    message = str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    assert message.startswith("Datastore 'S3Datastore' cannot store 3 of the 4 entities validated")
    assert "'NoFormatter'" in message and "'odd'" in message and "no_such_formatter" in message
    assert "'Pickle'" in message and "allow_pickle" in message
    assert good.datasetType.name not in message
    assert len([r for r in caplog.records if r.levelno == logging.CRITICAL]) == 3
    store.close()


def test_object_deleted_behind_its_record_names_the_dataset(
    store: S3Datastore, refs: RefMaker, moto_endpoint: S3TestEndpoint
) -> None:
    """The record says the dataset is stored, its object is gone: say which dataset, where, and what to do.

    Every read path (one dataset, many, a ranged read) with the one GET it costs anyway.
    """
    ref, rows = refs.make(), refs.make("NumpyArray")
    store.put({"a": 1}, ref)
    store.put(np.arange(3000, dtype="float64").reshape(1000, 3), rows)  # several checksum blocks
    backdoor = S3Backdoor(moto_endpoint.client, moto_endpoint.bucket, PREFIX)
    backdoor.delete_artifact(ref)
    backdoor.delete_artifact(rows)
    reads = {
        ref: [lambda: store.get(ref), lambda: store.get_many([ref]), lambda: store.get_many_encoded([ref])],
        rows: [lambda: store.get(rows, parameters={"rows": slice(500, 502)})],
    }
    for dataset, calls in reads.items():
        for call in calls:
            with counter(store) as requests, pytest.raises(DatasetNotFoundError) as info:
                call()
            assert requests.requests == {"GetObject": 1}
            message = str(info.value)
            assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, LookupError)
            uri = store.getURI(dataset)
            assert message.startswith(f"Dataset {dataset} is recorded by datastore 's3' at {uri}, but the")
            assert "Re-run the quantum that produced it" in message and "Datastore.forget" in message
            assert "NoSuchKey" in str(info.value.__cause__)  # the S3 error, as the cause


def test_trust_mode_names_the_predicted_location_of_a_missing_dataset(
    moto_endpoint: S3TestEndpoint, refs: RefMaker
) -> None:
    trusting = make_store(moto_endpoint, trust_mode=True)
    ref = refs.make()
    with pytest.raises(DatasetNotFoundError) as info:
        trusting.get(ref)
    message = str(info.value)
    assert message.startswith(f"Dataset {ref} has no record in datastore 's3' and no object at its predicted")
    assert str(trusting.getURI(ref, predict=True)).removesuffix("#predicted") in message
    assert "Check that the quantum producing it ran" in message


def test_trust_mode_reads_without_records(moto_endpoint: S3TestEndpoint, refs: RefMaker) -> None:
    writer = make_store(moto_endpoint)
    ref = refs.make()
    writer.put({"a": 1}, ref)
    plain = make_store(moto_endpoint)
    with pytest.raises(DatasetNotFoundError, match="trust mode"):
        plain.get(ref)
    trusting = make_store(moto_endpoint, trust_mode=True)
    assert trusting.exists(ref) and trusting.get(ref) == {"a": 1}


def test_records_move_between_datastores(moto_endpoint: S3TestEndpoint, refs: RefMaker) -> None:
    a = make_store(moto_endpoint)
    ref = refs.make()
    a.put({"a": 1}, ref)
    exported = a.export_records([ref])
    b = make_store(moto_endpoint)
    b.import_records(exported)
    assert b.get(ref) == {"a": 1}


def test_multipart_round_trip_and_abort(moto_endpoint: S3TestEndpoint, refs: RefMaker) -> None:
    config = moto_endpoint.config.model_copy(
        update={"multipart_threshold": 6 * 1024**2, "multipart_chunksize": 5 * 1024**2}
    )
    store = make_store(moto_endpoint, config)
    ref = refs.make("Bytes")
    payload = bytes(range(256)) * (13 * 4096)  # 13 MiB: 3 parts
    with counter(store) as c:
        store.put(payload, ref)
    assert c.requests["UploadPart"] == 3 and c.requests["CompleteMultipartUpload"] == 1
    assert store.get(ref) == payload
    failing = refs.make("Bytes")
    with FaultInjector(store.bucket.client, {"UploadPart": ["ok", "internal"] + ["internal"] * 10}):
        store.retry = make_retry_policy(RetryConfig(max_attempts=2), sleep=lambda s: None)
        store.bucket.retry = store.retry
        with pytest.raises(TransientStorageError):
            store.put(payload, failing)
    uploads = moto_endpoint.client.list_multipart_uploads(Bucket=moto_endpoint.bucket)
    assert not uploads.get("Uploads")
    assert not S3Backdoor(moto_endpoint.client, moto_endpoint.bucket, PREFIX).has_artifact(failing)


# ------------------------------------------------------------------- SeaweedFS


@pytest.mark.seaweedfs
def test_wrong_credentials(seaweedfs_endpoint: S3TestEndpoint, refs: RefMaker) -> None:
    config = seaweedfs_endpoint.config.model_copy(
        update={"secret_access_key": SecretStr("wrong-secret-value")}
    )
    store = make_store(seaweedfs_endpoint, config)
    with pytest.raises(CredentialsError) as info:
        store.put({"a": 1}, refs.make())
    assert "wrong-secret-value" not in str(info.value)
    real = seaweedfs_endpoint.config.secret_access_key
    assert real is not None and real.get_secret_value() not in str(info.value)


@pytest.mark.seaweedfs
def test_read_only_identity(seaweedfs_endpoint: S3TestEndpoint, refs: RefMaker) -> None:
    admin = make_store(seaweedfs_endpoint)
    ref = refs.make()
    admin.put({"a": 1}, ref)
    reader = make_store(seaweedfs_endpoint, seaweedfs_endpoint.config_for("reader"))
    reader.import_records(admin.export_records([ref]))
    assert reader.get(ref) == {"a": 1}
    new = refs.make()
    with pytest.raises(AccessDeniedError) as info:
        reader.put({"b": 2}, new)
    assert "PutObject" in str(info.value)
    assert not reader.knows(new)
    assert not S3Backdoor(seaweedfs_endpoint.client, seaweedfs_endpoint.bucket, PREFIX).has_artifact(new)


@pytest.mark.seaweedfs
def test_seaweedfs_rejects_wrong_checksum(seaweedfs_endpoint: S3TestEndpoint) -> None:
    """Bytes altered in transit (checksum sent does not match): the server refuses, nothing is stored."""
    from s3qbb.s3 import checksums

    store = make_store(seaweedfs_endpoint)
    bad = checksums.Checksum("CRC32C", "AAAAAA==")
    with pytest.raises(DatasetIntegrityError, match="checksum"):
        store.bucket.put_new(store.key("x/bad.bin"), b"payload", bad)
    assert store.bucket.head(store.key("x/bad.bin")) is None
