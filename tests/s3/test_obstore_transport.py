"""The obstore transport: choice, imports, errors, retries, listing, checksums and logging (moto, SeaweedFS).

The guarantees shared with boto3 (create-only writes, write tokens, placeholders,
verified reads) run on both transports in the conformance, integrity, ownership,
race and soak tests; this module checks what is particular to obstore.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import TYPE_CHECKING, TypeVar

import pytest
from pydantic import SecretStr

from s3qbb.config import RetryConfig, S3EndpointConfig
from s3qbb.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    ConfigError,
    CredentialsError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    PreconditionFailedError,
    TransientStorageError,
)
from s3qbb.s3 import checksums, make_retry_policy
from s3qbb.s3.errors import is_transient
from s3qbb.s3.objects import S3Bucket
from s3qbb.s3.transport import TransportError
from s3qbb.testing.proxy import FaultProxy
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import count_requests, obstore_available

if TYPE_CHECKING:
    from typing_extensions import Buffer

T = TypeVar("T")

pytestmark = [
    pytest.mark.obstore,
    pytest.mark.skipif(not obstore_available(), reason="obstore is not installed (s3qbb[obstore])"),
]


def obstore_config(endpoint: S3TestEndpoint, **overrides: object) -> S3EndpointConfig:
    return endpoint.config.model_copy(update={"transport": "obstore", **overrides})


def open_bucket(config: S3EndpointConfig, bucket: str, **retry: object) -> S3Bucket:
    policy = make_retry_policy(config.retry.model_copy(update=retry), sleep=lambda s: None)
    return S3Bucket.open(config, bucket, retry=policy)


@pytest.fixture
def bucket(moto_endpoint: S3TestEndpoint) -> S3Bucket:
    return open_bucket(obstore_config(moto_endpoint), moto_endpoint.bucket)


def flat(pages: Iterable[list[T]]) -> list[T]:
    return list(itertools.chain.from_iterable(pages))


def put(bucket: S3Bucket, key: str, data: bytes) -> checksums.Checksum:
    checksum = checksums.compute("CRC32C", data)
    bucket.put_new(key, data, checksum)
    return checksum


# ------------------------------------------------------------------ choice and imports


def test_transport_is_chosen_per_endpoint_and_by_environment(moto_endpoint: S3TestEndpoint) -> None:
    assert S3EndpointConfig().transport == "boto3"
    assert S3EndpointConfig.from_env({"S3QBB_S3_TRANSPORT": "obstore"}).transport == "obstore"
    with pytest.raises(ValueError, match="transport"):
        S3EndpointConfig(transport="curl")
    assert S3Bucket.open(moto_endpoint.config, moto_endpoint.bucket).transport.name == "boto3"
    bucket = S3Bucket.open(obstore_config(moto_endpoint), moto_endpoint.bucket)
    assert bucket.transport.name == "obstore"
    with pytest.raises(AttributeError, match="obstore transport has no boto3 client"):
        bucket.client  # noqa: B018


def test_missing_obstore_is_a_configuration_error(
    moto_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "obstore.store", None)  # import obstore.store fails
    with pytest.raises(ConfigError, match=r"pip install 's3qbb\[obstore\]'"):
        S3Bucket.open(obstore_config(moto_endpoint, region="eu-west-3"), moto_endpoint.bucket)


_CHILD = textwrap.dedent(
    """
    import json, os, sys
    from s3qbb.config import S3EndpointConfig
    from s3qbb.s3 import checksums
    from s3qbb.s3.objects import S3Bucket
    bucket = S3Bucket.open(S3EndpointConfig.from_env(), os.environ["BUCKET"])
    bucket.put_new("k/a", b"data", checksums.compute("CRC32C", b"data"))
    bucket.put_raw("k/b", b"raw")
    pages = list(bucket.list_keys("k/"))
    result = [bucket.get("k/a").body.decode(), bucket.get("k/a", (1, 3)).body.decode()]
    result.append(bucket.head("k/b").size)
    bucket.delete("k/b")
    loaded = {m.partition(".")[0] for m in sys.modules}
    modules = sorted(loaded & {"boto3", "botocore", "s3transfer", "urllib3"})
    print(json.dumps({"result": result, "pages": pages, "modules": modules}))
    """
)


def test_small_operations_import_neither_boto3_nor_botocore(moto_endpoint: S3TestEndpoint) -> None:
    config = moto_endpoint.config
    assert config.secret_access_key is not None
    env = {
        "PATH": "",
        "BUCKET": moto_endpoint.bucket,
        "S3QBB_S3_TRANSPORT": "obstore",
        "S3QBB_S3_ENDPOINT_URL": moto_endpoint.endpoint_url,
        "S3QBB_S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": str(config.access_key_id),
        "AWS_SECRET_ACCESS_KEY": config.secret_access_key.get_secret_value(),
        "PYTHONPATH": ":".join(sys.path),
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out == {"result": ["data", "at", 3], "pages": [["k/a", "k/b"]], "modules": []}


# ------------------------------------------------------------------ errors


def test_errors_translate_by_code_and_status(bucket: S3Bucket, moto_endpoint: S3TestEndpoint) -> None:
    with pytest.raises(DatasetNotFoundError, match="NoSuchKey; HTTP 404") as missing:
        bucket.get("no/such/key")
    cause = missing.value.__cause__
    assert isinstance(cause, TransportError) and (cause.code, cause.status, cause.kind) == (
        "NoSuchKey",
        404,
        "response",
    )
    assert bucket.head("no/such/key") is None
    put(bucket, "once", b"1")
    with pytest.raises(PreconditionFailedError, match="another writer"):
        put(bucket, "once", b"2")
    other = open_bucket(bucket.config, "no-such-bucket")
    with pytest.raises(BucketNotFoundError, match="NoSuchBucket"):
        other.get("key")
    with pytest.raises(BucketNotFoundError):
        list(other.list_keys("p/"))


@pytest.mark.seaweedfs
def test_permissions_and_credentials_on_seaweedfs(seaweedfs_endpoint: S3TestEndpoint) -> None:
    admin = open_bucket(obstore_config(seaweedfs_endpoint), seaweedfs_endpoint.bucket)
    put(admin, "k", b"data")
    reader_config = seaweedfs_endpoint.config_for("reader", transport="obstore")
    reader = open_bucket(reader_config, seaweedfs_endpoint.bucket)
    assert reader.get("k").body == b"data"
    with pytest.raises(AccessDeniedError):
        put(reader, "k2", b"data")
    secret = "wrong-secret-value-1234"
    wrong = obstore_config(
        seaweedfs_endpoint, secret_access_key=SecretStr(secret), retry=RetryConfig(max_attempts=1)
    )
    with pytest.raises(CredentialsError) as info:
        open_bucket(wrong, seaweedfs_endpoint.bucket).get("k")
    assert secret not in str(info.value) and secret not in repr(info.value.__cause__)
    assert "SignatureDoesNotMatch" in str(info.value)


def test_classification_of_transport_errors() -> None:
    def error(**kwargs: object) -> TransportError:
        return TransportError("x", **kwargs)  # type: ignore[arg-type]

    for transient in (
        error(status=503, code="SlowDown"),
        error(status=500),
        error(status=429),
        error(code="RequestTimeout", status=400),
        *(error(kind=kind) for kind in ("connect", "request", "timeout", "interrupted")),
    ):
        assert is_transient(transient), (transient.status, transient.code, transient.kind)
    for permanent in (error(status=403), error(status=404), error(status=412), error(kind="unknown")):
        assert not is_transient(permanent)


@pytest.mark.parametrize(
    "kind", ["slowdown", "internal", "reset_before", "reset_after", "slow_first_byte", "truncate"]
)
@pytest.mark.parametrize("operation", ["PutObject", "GetObject", "HeadObject", "ListObjectsV2"])
def test_each_fault_is_retried_once(moto_endpoint: S3TestEndpoint, kind: str, operation: str) -> None:
    """Through the fault proxy: one fault, one retry by s3qbb's policy (obstore's own retries are off)."""
    with FaultProxy(moto_endpoint.endpoint_url, slow_delay=1.5) as proxy:
        config = proxy.endpoint_config(obstore_config(moto_endpoint, read_timeout=0.75))
        bucket = open_bucket(config, moto_endpoint.bucket)
        checksum = put(bucket, "f/k", b"payload")
        proxy.script(operation, kind)
        if operation == "PutObject":
            bucket.put_new("f/k2", b"payload", checksum)  # reset_after: the retry finds its own token
            assert bucket.get("f/k2").body == b"payload"
        elif operation == "GetObject":
            assert bucket.get("f/k").body == b"payload"
        elif operation == "HeadObject":
            head = bucket.head("f/k")
            assert head is not None and head.size == 7
        else:
            assert list(bucket.list_keys("f/")) == [["f/k"]]
        assert proxy.injected == {kind: 1}
        assert bucket.retry.stats.retries == 1
        assert proxy.requests[operation] >= 2


def test_obstore_does_not_retry_and_4xx_is_never_retried(moto_endpoint: S3TestEndpoint) -> None:
    with FaultProxy(moto_endpoint.endpoint_url, {"GetObject": ["slowdown"]}) as proxy:
        config = proxy.endpoint_config(obstore_config(moto_endpoint))
        single = open_bucket(config, moto_endpoint.bucket, max_attempts=1)
        put(single, "k", b"v")
        with pytest.raises(TransientStorageError):
            single.get("k")
        assert proxy.requests["GetObject"] == 1  # obstore sent it once: its retries are off
        proxy.reset_counters()
        with pytest.raises(DatasetNotFoundError):
            open_bucket(config, moto_endpoint.bucket).get("missing")
        assert proxy.requests == {"GetObject": 1}


def test_a_short_body_is_retried(bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body shorter than its range (obstore did not notice) is a TruncatedBodyError: retried."""
    put(bucket, "short", b"0123456789")
    transport = bucket.transport
    real = transport._obstore  # type: ignore[attr-defined]
    calls = 0

    class Short:
        def __init__(self, response: object) -> None:
            self._response = response

        def __getattr__(self, name: str) -> object:
            return getattr(self._response, name)

        def bytes(self) -> bytes:
            return bytes(self._response.bytes())[:-1]  # type: ignore[attr-defined]

    def get(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        response = real.get(*args, **kwargs)
        return Short(response) if calls == 1 else response

    monkeypatch.setattr(transport, "_obstore", SimpleNamespace(get=get))
    assert bucket.get("short").body == b"0123456789"
    assert calls == 2 and bucket.retry.stats.errors == {"TruncatedBodyError": 1}


# ------------------------------------------------------------------ reads, listing, checksums


BIG = bytes(range(256)) * (4 * 1024) + b"tail"
"""1 MiB and 4 bytes: more than one chunk of a streamed body (`_STREAM_CHUNK`, 256 KiB)."""


def test_a_large_body_is_streamed_into_one_bytes(bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body of more than one chunk is read chunk by chunk into one `bytes`, not via ``.bytes()``."""
    from s3qbb.s3 import obstore_transport

    assert len(BIG) > 4 * obstore_transport._STREAM_CHUNK
    put(bucket, "big", BIG)
    put(bucket, "small", b"small")
    transport = bucket.transport
    real = transport._obstore  # type: ignore[attr-defined]
    collected: list[str] = []

    class Watched:
        def __init__(self, response: object) -> None:
            self._response = response

        def __getattr__(self, name: str) -> object:
            if name in ("bytes", "stream"):
                collected.append(name)
            return getattr(self._response, name)

    monkeypatch.setattr(
        transport, "_obstore", SimpleNamespace(get=lambda *a, **k: Watched(real.get(*a, **k)))
    )
    body = bucket.get("big").body
    assert type(body) is bytes and body == BIG and collected == ["stream"]
    start = obstore_transport._STREAM_CHUNK - 10
    ranged = bucket.get("big", (start, len(BIG) - 1))
    assert (ranged.body, ranged.size) == (BIG[start:-1], len(BIG)) and collected == ["stream"] * 2
    assert bucket.get("small").body == b"small" and collected[-1] == "bytes"


def test_a_streamed_body_feeds_its_digest_chunk_by_chunk(bucket: S3Bucket) -> None:
    """The checksums of a large GET are computed as its chunks arrive, ready when the last one lands."""
    put(bucket, "big", BIG)
    put(bucket, "small", b"small")
    fed: list[int] = []

    class Recording(checksums.RunningChecksum):
        def update(self, data: Buffer) -> None:
            fed.append(memoryview(data).nbytes)
            super().update(data)

    result = bucket.get("big", digest=lambda: Recording("CRC32C"))
    assert isinstance(result.digest, Recording) and len(fed) > 1 and sum(fed) == len(BIG)
    assert result.digest.checksum() == checksums.compute("CRC32C", BIG)
    block = 64 * 1024
    ranged = bucket.get("big", (block, len(BIG)), digest=lambda: checksums.RunningBlocks(block))
    assert isinstance(ranged.digest, checksums.RunningBlocks)
    assert ranged.digest.crcs() == checksums.BlockChecksums.compute(BIG, block).crcs[1:]
    small = bucket.get("small", digest=lambda: checksums.RunningChecksum("SHA256"))
    assert isinstance(small.digest, checksums.RunningChecksum)
    assert small.digest.checksum() == checksums.compute("SHA256", b"small")
    assert bucket.get("small").digest is None


def test_a_whole_read_takes_its_size_from_the_range_not_the_metadata(
    bucket: S3Bucket, moto_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole GET does not build obstore's ObjectMeta (a dict, a datetime); a ranged one needs its size."""
    moto_endpoint.client.put_object(
        Bucket=moto_endpoint.bucket,
        Key="whole",
        Body=b"0123456789",
        ContentType="application/json",
        Metadata={"Mixed-Case": "kept"},
    )
    transport = bucket.transport
    real = transport._obstore  # type: ignore[attr-defined]
    used: list[str] = []

    class Watched:
        def __init__(self, response: object) -> None:
            self._response = response

        def __getattr__(self, name: str) -> object:
            used.append(name)
            return getattr(self._response, name)

    monkeypatch.setattr(
        transport, "_obstore", SimpleNamespace(get=lambda *a, **k: Watched(real.get(*a, **k)))
    )
    whole = bucket.get("whole")
    assert (whole.body, whole.size, whole.metadata) == (b"0123456789", 10, {"mixed-case": "kept"})
    assert "meta" not in used
    part = bucket.get("whole", (2, 5))
    assert (part.body, part.size, part.metadata) == (b"234", 10, {"mixed-case": "kept"})
    assert "meta" in used


def test_a_short_streamed_body_is_retried(bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """A streamed body that ends early (one chunk missing) is a TruncatedBodyError: retried."""
    put(bucket, "big", BIG)
    transport = bucket.transport
    real = transport._obstore  # type: ignore[attr-defined]
    calls = 0

    class Short:
        def __init__(self, response: object) -> None:
            self._response = response

        def __getattr__(self, name: str) -> object:
            return getattr(self._response, name)

        def stream(self, min_chunk_size: int) -> Iterator[bytes]:
            chunks = list(self._response.stream(min_chunk_size=min_chunk_size))  # type: ignore[attr-defined]
            assert len(chunks) > 1
            return iter(chunks[:-1])

    def get(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        response = real.get(*args, **kwargs)
        return Short(response) if calls == 1 else response

    monkeypatch.setattr(transport, "_obstore", SimpleNamespace(get=get))
    assert bucket.get("big").body == BIG
    assert calls == 2 and bucket.retry.stats.errors == {"TruncatedBodyError": 1}


@pytest.mark.parametrize("kind", ["truncate", "reset_after", "slowdown"])
def test_a_fault_in_a_streamed_body_is_retried_once(moto_endpoint: S3TestEndpoint, kind: str) -> None:
    """A large GET cut short or refused on the wire: one retry, then the whole body."""
    with FaultProxy(moto_endpoint.endpoint_url) as proxy:
        bucket = open_bucket(proxy.endpoint_config(obstore_config(moto_endpoint)), moto_endpoint.bucket)
        put(bucket, "big", BIG)
        proxy.script("GetObject", kind)
        result = bucket.get("big", digest=lambda: checksums.RunningChecksum("CRC32C"))
        assert result.body == BIG and isinstance(result.digest, checksums.RunningChecksum)
        assert result.digest.checksum() == checksums.compute("CRC32C", BIG)  # fed by the retry alone
        assert proxy.injected == {kind: 1} and proxy.requests["GetObject"] == 2
        assert bucket.retry.stats.retries == 1


def test_a_bit_flipped_in_a_streamed_body_is_read_again(moto_endpoint: S3TestEndpoint) -> None:
    """The datastore verifies what the streamed read returns: a flipped bit costs one re-read."""
    from s3qbb import DatasetRef, DatasetType, DimensionUniverse
    from s3qbb.datastores.s3 import S3Datastore

    universe = DimensionUniverse()
    blob = DatasetType("blob", ["instrument"], "Bytes", universe=universe)
    ref = DatasetRef(blob, {"instrument": "I"}, "r")
    with FaultProxy(moto_endpoint.endpoint_url) as proxy:
        config = proxy.endpoint_config(obstore_config(moto_endpoint))
        store = S3Datastore(f"s3://{moto_endpoint.bucket}/flip", name="s3", config=config)
        store.put(BIG, ref)
        proxy.script("GetObject", "corrupt")
        assert store.get(ref) == BIG
        assert proxy.injected == {"corrupt": 1} and proxy.requests["GetObject"] == 2


def test_ranged_get_reports_the_total_size(bucket: S3Bucket) -> None:
    data = bytes(range(256)) * 40
    put(bucket, "r", data)
    result = bucket.get("r", (1000, 1100))
    assert (result.body, result.size) == (data[1000:1100], len(data))
    assert result.metadata["s3qbb-checksum"] == str(checksums.compute("CRC32C", data))


@pytest.fixture
def many_keys(moto_endpoint: S3TestEndpoint) -> Iterator[list[str]]:
    keys = [f"many/{i:05d}" for i in range(1001)]
    client = moto_endpoint.client
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=moto_endpoint.bucket, Key=k, Body=b"x"), keys))
    yield keys


def test_listing_is_one_request_per_thousand_keys(bucket: S3Bucket, many_keys: list[str]) -> None:
    with count_requests(bucket) as counter:
        pages = list(bucket.list_keys("many/"))
        assert [len(p) for p in pages] == [1000, 1] and flat(pages) == many_keys
        assert counter.requests == {"ListObjectsV2": 2}
        counter.reset()
        assert flat(bucket.list_keys("many/", start_after="many/00990")) == many_keys[991:]
        etags = flat(bucket.list_etags("many/"))
        assert len(etags) == 1001 and all(etag.startswith('"') for _, etag in etags)


def test_listing_keys_obstore_cannot_represent(bucket: S3Bucket, moto_endpoint: S3TestEndpoint) -> None:
    """A key with an empty segment, or a prefix that ends inside a segment: listed by the boto3 client."""
    for key in ("odd/a", "odd//b", "odd/c", "odder/d"):
        moto_endpoint.client.put_object(Bucket=moto_endpoint.bucket, Key=key, Body=b"x")
    assert flat(bucket.list_keys("odd/")) == ["odd//b", "odd/a", "odd/c"]
    assert flat(bucket.list_keys("odd")) == ["odd//b", "odd/a", "odd/c", "odder/d"]


@pytest.mark.seaweedfs
def test_every_put_carries_a_sha256_the_server_checks(seaweedfs_endpoint: S3TestEndpoint) -> None:
    """obstore cannot send s3qbb's CRC32C: it sends x-amz-checksum-sha256, which SeaweedFS checks."""
    bucket = open_bucket(obstore_config(seaweedfs_endpoint), seaweedfs_endpoint.bucket)
    data = b"checked" * 100
    checksum = put(bucket, "c/k", data)
    head = seaweedfs_endpoint.client.head_object(
        Bucket=seaweedfs_endpoint.bucket, Key="c/k", ChecksumMode="ENABLED"
    )
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert head["Metadata"]["s3qbb-checksum"] == str(checksum)  # the record's CRC32C, as on boto3
    with FaultProxy(seaweedfs_endpoint.endpoint_url, {"PutObject": ["corrupt_request"]}) as proxy:
        proxied = open_bucket(proxy.endpoint_config(bucket.config), seaweedfs_endpoint.bucket)
        with pytest.raises(DatasetIntegrityError, match="BadDigest"):
            put(proxied, "c/flipped", data)
        assert proxy.injected == {"corrupt_request": 1}
    assert bucket.head("c/flipped") is None


# ------------------------------------------------------------------ multipart, logging, secrets


def test_boto3_is_only_created_for_what_obstore_cannot_send(moto_endpoint: S3TestEndpoint) -> None:
    config = obstore_config(moto_endpoint, multipart_threshold=5 * 1024**2, multipart_chunksize=5 * 1024**2)
    bucket = open_bucket(config, moto_endpoint.bucket)
    put(bucket, "small", b"x")
    bucket.get("small")
    assert getattr(bucket.transport, "_boto3", None) is None
    data = b"\x01" * (6 * 1024**2)
    with count_requests(bucket) as counter:
        put(bucket, "big", data)
        assert counter.requests == {
            "PutObject": 1,
            "CreateMultipartUpload": 1,
            "UploadPart": 2,
            "CompleteMultipartUpload": 1,
            "HeadObject": 1,
        }
    assert getattr(bucket.transport, "_boto3", None) is not None
    assert bucket.get("big").body == data


def test_requests_are_logged_without_secrets(
    moto_endpoint: S3TestEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    config = obstore_config(moto_endpoint, region="eu-north-1")  # a store of its own: its creation is logged
    assert config.secret_access_key is not None
    secret = config.secret_access_key.get_secret_value()
    with caplog.at_level(logging.DEBUG, logger="s3qbb"):
        bucket = open_bucket(config, moto_endpoint.bucket)
        put(bucket, "logged", b"abc")
        bucket.get("logged")
        with pytest.raises(DatasetNotFoundError):
            bucket.get("absent")
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("PutObject s3://") and "3 bytes sent" in line for line in lines)
    assert any(line.startswith("GetObject s3://") and "3 bytes" in line for line in lines)
    assert any("GetObject" in line and "absent: HTTP 404" in line for line in lines)
    assert any("S3 client (obstore): endpoint" in line for line in lines)
    assert not any(secret in line for line in lines)
    assert secret not in repr(bucket.transport)


def test_a_cut_refusal_of_a_create_only_put_is_told_by_the_object(moto_endpoint: S3TestEndpoint) -> None:
    """obstore loses the status of an error response whose body is cut (botocore reads it): a create-only
    PUT looks at the object, finds it, and is refused (412) at once, as on boto3."""
    with FaultProxy(moto_endpoint.endpoint_url) as proxy:
        bucket = open_bucket(proxy.endpoint_config(obstore_config(moto_endpoint)), moto_endpoint.bucket)
        put(bucket, "k", b"v")
        proxy.script("PutObject", "truncate")  # the 412's body cut
        with pytest.raises(PreconditionFailedError, match="another writer") as info:
            put(bucket, "k", b"other")
        causes = []
        cause: BaseException | None = info.value
        while cause is not None:
            causes.append(cause)
            cause = cause.__cause__
        refusal = [c for c in causes if isinstance(c, TransportError) and c.status == 412]
        assert refusal and "cut short" in str(refusal[0])
        # One HEAD tells the refusal, one whose object it is (as after boto3's 412); no retry.
        assert proxy.requests["HeadObject"] == 2 and bucket.retry.stats.retries == 0
        assert bucket.get("k").body == b"v"


def test_which_cut_conditional_put_was_refused() -> None:
    from s3qbb.s3.obstore_errors import BODY_CUT, refused_conditional_put
    from s3qbb.s3.ownership import HeadResult

    cut = TransportError("PutObject s3://b/k failed: body error", kind="interrupted", reason=BODY_CUT)
    head = HeadResult(1, {}, '"e1"')
    create = refused_conditional_put(cut, head, "PutObject s3://b/k", if_match=None)
    assert (create.status, create.code, create.kind) == (412, "PreconditionFailed", "response")
    assert "an object exists" in str(create) and not is_transient(create)
    assert refused_conditional_put(cut, None, "PutObject s3://b/k", if_match=None) is cut  # retried
    for gone_or_changed in (None, HeadResult(1, {}, '"e2"')):
        replace = refused_conditional_put(cut, gone_or_changed, "PutObject s3://b/k", if_match='"e1"')
        assert replace.status == 412 and "gone or changed" in str(replace)
    assert refused_conditional_put(cut, head, "PutObject s3://b/k", if_match='"e1"') is cut
    assert is_transient(cut)


def test_a_cut_error_response_whose_object_cannot_be_seen_says_so(moto_endpoint: S3TestEndpoint) -> None:
    """Every create-only PUT's response cut, every HEAD failing: refusal or failure cannot be told apart.
    It stays a transient failure (retried, then given up) whose message says what happened and what to do."""
    with FaultProxy(moto_endpoint.endpoint_url) as proxy:
        bucket = open_bucket(proxy.endpoint_config(obstore_config(moto_endpoint)), moto_endpoint.bucket)
        put(bucket, "k", b"v")
        proxy.script("PutObject", *["truncate"] * 10)
        proxy.script("HeadObject", *["internal"] * 10)
        with pytest.raises(TransientStorageError) as info:
            put(bucket, "k", b"v")
        message = str(info.value)
        assert "error response was cut short" in message and "HEAD" in message and "HTTP 500" in message
        assert "s3:GetObject" in message and "boto3 transport" in message
        assert bucket.retry.stats.retries >= 1
        assert bucket.get("k").body == b"v"  # untouched
