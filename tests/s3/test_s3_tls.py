"""A failed TLS handshake: one clear `TLSError`, never retried, on both transports (moto behind ``https://``).

The moto server speaks plain HTTP; an ``https://`` endpoint URL pointing at it
makes every TLS handshake fail (the same class of failure as an untrusted or
self-signed certificate, or a TLS-intercepting proxy). A refused connection,
by contrast, stays transient and is retried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from s3qbb.config import S3EndpointConfig
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import S3qbbError, TLSError, TransientStorageError
from s3qbb.s3 import checksums, make_retry_policy
from s3qbb.s3.errors import is_transient, translate_error
from s3qbb.s3.objects import S3Bucket
from s3qbb.s3.transport import TransportError
from s3qbb.testing.data import RefMaker
from s3qbb.testing.servers import free_ports
from s3qbb.testing.transports import count_requests, obstore_available

if TYPE_CHECKING:
    from collections.abc import Callable

    from s3qbb.testing.servers import S3TestEndpoint

TRANSPORTS = [
    "boto3",
    pytest.param(
        "obstore",
        marks=[
            pytest.mark.obstore,
            pytest.mark.skipif(not obstore_available(), reason="obstore is not installed (s3qbb[obstore])"),
        ],
    ),
]

ADVICE = {
    "boto3": "AWS_CA_BUNDLE",
    "obstore": "SSL_CERT_FILE",
}


def https_config(endpoint: S3TestEndpoint, transport: str) -> S3EndpointConfig:
    """The endpoint's configuration with ``https://`` for the plain-HTTP moto server."""
    assert endpoint.endpoint_url.startswith("http://")
    return endpoint.config.model_copy(
        update={"endpoint_url": endpoint.endpoint_url.replace("http://", "https://"), "transport": transport}
    )


def open_bucket(config: S3EndpointConfig, bucket: str) -> S3Bucket:
    policy = make_retry_policy(
        config.retry.model_copy(
            update={"max_attempts": 4, "connect_retry_time": 2.0, "max_total_time": 10.0}
        ),
        sleep=lambda seconds: None,
    )
    return S3Bucket.open(config, bucket, retry=policy)


def assert_tls_message(
    err: BaseException, *, transport: str, operation: str, uri: str, endpoint: str
) -> None:
    message = str(err)
    assert f"{operation} on {uri} failed at {endpoint}" in message
    assert "the TLS connection could not be made" in message
    assert "retrying will not help" in message
    assert "scheme of the endpoint URL matches the server" in message
    assert ADVICE[transport] in message
    assert "may be overloaded or unreachable" not in message
    assert "Traceback" not in message


# ------------------------------------------------------------------ classification and translation


@pytest.mark.obstore
@pytest.mark.skipif(not obstore_available(), reason="obstore is not installed (s3qbb[obstore])")
def test_obstore_s_real_tls_error_is_classified_tls_and_translated(moto_endpoint: S3TestEndpoint) -> None:
    """obstore's own error for an https:// URL on a plain-HTTP server: kind "tls", one request, TLSError."""
    config = https_config(moto_endpoint, "obstore")
    bucket = open_bucket(config, moto_endpoint.bucket)
    with count_requests(bucket) as counter, pytest.raises(TLSError) as info:
        bucket.put_new("tls/k", b"payload", checksums.compute("CRC32C", b"payload"))
    raw = info.value.__cause__
    assert isinstance(raw, TransportError)
    assert raw.kind == "tls" and raw.status is None
    assert raw.reason == "InvalidMessage(InvalidContentType)"  # rustls: the answer was not a TLS record
    assert not is_transient(raw)
    translated = translate_error(
        raw, operation="PutObject", bucket=moto_endpoint.bucket, key="tls/k", endpoint=config.endpoint_url
    )
    assert type(translated) is TLSError
    assert_tls_message(
        translated,
        transport="obstore",
        operation="PutObject",
        uri=f"s3://{moto_endpoint.bucket}/tls/k",
        endpoint=str(config.endpoint_url),
    )
    assert "InvalidMessage(InvalidContentType)" in str(translated)
    assert "the server did not answer in TLS" in str(translated)
    assert "AWS_CA_BUNDLE" in str(translated)  # says obstore does not read it
    assert counter.requests == {"PutObject": 1}
    snapshot = bucket.retry.stats.snapshot()
    assert (snapshot.attempts, snapshot.retries, snapshot.give_ups) == (1, 0, 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("operation", ["PutObject", "GetObject", "HeadObject", "ListObjectsV2"])
def test_a_tls_failure_is_one_tls_error_without_retries(
    moto_endpoint: S3TestEndpoint, transport: str, operation: str
) -> None:
    config = https_config(moto_endpoint, transport)
    bucket = open_bucket(config, moto_endpoint.bucket)
    calls: dict[str, Callable[[], object]] = {
        "PutObject": lambda: bucket.put_new("tls/k", b"payload", checksums.compute("CRC32C", b"payload")),
        "GetObject": lambda: bucket.get("tls/k"),
        "HeadObject": lambda: bucket.head("tls/k"),
        "ListObjectsV2": lambda: list(bucket.list_keys("tls/")),
    }
    with count_requests(bucket) as counter, pytest.raises(TLSError) as info:
        calls[operation]()
    err = info.value
    assert isinstance(err, S3qbbError) and isinstance(err, ConnectionError)
    assert_tls_message(
        err,
        transport=transport,
        operation=operation,
        uri=f"s3://{moto_endpoint.bucket}/tls/" + ("k" if operation != "ListObjectsV2" else ""),
        endpoint=str(config.endpoint_url),
    )
    assert "the server did not answer in TLS" in str(err)
    assert counter.requests == {operation: 1}
    snapshot = bucket.retry.stats.snapshot()
    assert (snapshot.attempts, snapshot.retries, snapshot.give_ups) == (1, 0, 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_refused_connection_stays_transient_and_is_retried(transport: str, scheme: str) -> None:
    (port,) = free_ports(1)  # nothing listens: refused before any TLS
    config = S3EndpointConfig(
        endpoint_url=f"{scheme}://127.0.0.1:{port}",
        region="us-east-1",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        addressing_style="path",
        transport=transport,
    )
    policy = make_retry_policy(
        config.retry.model_copy(
            update={"max_attempts": 3, "connect_retry_time": 0.0, "max_total_time": 10.0}
        ),
        sleep=lambda seconds: None,
    )
    bucket = S3Bucket.open(config, "bkt", retry=policy)
    with count_requests(bucket) as counter, pytest.raises(TransientStorageError) as info:
        bucket.head("k")
    assert not isinstance(info.value, TLSError)
    assert not isinstance(info.value.__cause__, TLSError)
    assert is_transient(info.value.__cause__)  # type: ignore[arg-type]
    if isinstance(info.value.__cause__, TransportError):
        assert info.value.__cause__.kind == "connect"
    assert counter.requests["HeadObject"] >= 2
    assert policy.stats.snapshot().retries >= 1


# ------------------------------------------------------------------ end to end through the datastore


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_datastore_put_and_get_raise_tls_error(moto_endpoint: S3TestEndpoint, transport: str) -> None:
    root = f"s3://{moto_endpoint.bucket}/tls-repo"
    ref = RefMaker().make("StructuredDataDict")
    good = S3Datastore(root, config=moto_endpoint.config.model_copy(update={"transport": transport}))
    good.put({"a": 1}, ref)

    config = https_config(moto_endpoint, transport)
    config = config.model_copy(
        update={"retry": config.retry.model_copy(update={"max_total_time": 10.0, "connect_retry_time": 5.0})}
    )
    bad = S3Datastore(root, config=config, trust_mode=True)  # trust mode: get reads the predicted location
    with count_requests(bad) as counter:
        with pytest.raises(TLSError) as put_info:
            bad.put({"a": 2}, RefMaker().make("StructuredDataDict"))
        put_requests = counter.total
        with pytest.raises(TLSError) as get_info:
            bad.get(ref)
        get_requests = counter.total - put_requests
    for info, operation in ((put_info, "PutObject"), (get_info, None)):
        message = str(info.value)
        assert f"s3://{moto_endpoint.bucket}/tls-repo/" in message
        assert str(config.endpoint_url) in message
        assert "the TLS connection could not be made" in message and "retrying will not help" in message
        assert ADVICE[transport] in message
        if operation is not None:
            assert message.startswith(f"{operation} on ")
    assert put_requests == 1
    assert get_requests == 1
    assert bad.retry.stats.snapshot().retries == 0
    assert good.get(ref) == {"a": 1}


def _obstore_text(inner: str) -> str:
    """The text of obstore 0.12's error for a PUT whose connection failed with ``inner`` (verbatim form)."""
    return (
        "Generic S3 error: Error performing PUT https://127.0.0.1:37945/bkt/k in 64.2ms - HTTP error: "
        'error sending request\n\nDebug source:\nGeneric {\n    store: "S3",\n    source: RetryError(\n'
        "        RetryErrorImpl {\n            method: PUT,\n            uri: Some(\n"
        "                https://127.0.0.1:37945/bkt/k,\n            ),\n            retries: 0,\n"
        "            inner: Http(\n                HttpError {\n                    kind: Connect,\n"
        "                    source: reqwest::Error {\n                        kind: Request,\n"
        "                        source: hyper_util::client::legacy::Error(\n"
        f"                            Connect,\n{inner}\n                        ),\n"
        "                    },\n                },\n            ),\n        },\n    ),\n}"
    )


UNTRUSTED = (  # an untrusted CA (captured from obstore 0.12.1 against a server with a private CA)
    "Custom {\n kind: Other,\n error: Custom {\n kind: InvalidData,\n error: InvalidCertificate(\n"
    " UnknownIssuer,\n ),\n },\n },"
)
CA_AS_LEAF = (  # a self-signed CA certificate used as the server's
    "Custom {\n kind: Other,\n error: Custom {\n kind: InvalidData,\n error: InvalidCertificate(\n"
    " Other(\n OtherError(\n CaUsedAsEndEntity,\n ),\n ),\n ),\n },\n },"
)
REFUSED = (
    'ConnectError(\n "tcp connect error",\n 127.0.0.1:40397,\n Os {\n code: 111,\n'
    ' kind: ConnectionRefused,\n message: "Connection refused",\n },\n ),'
)
HANDSHAKE_EOF = 'Custom {\n kind: UnexpectedEof,\n error: "tls handshake eof",\n },'


@pytest.mark.parametrize(
    ("inner", "kind", "reason"),
    [
        (UNTRUSTED, "tls", "InvalidCertificate(UnknownIssuer)"),
        (CA_AS_LEAF, "tls", "InvalidCertificate(Other(OtherError(CaUsedAsEndEntity)))"),
        (REFUSED, "connect", ""),
        (HANDSHAKE_EOF, "connect", ""),  # closed during the handshake: like a reset, retried
    ],
    ids=["untrusted", "ca-as-leaf", "refused", "handshake-eof"],
)
def test_obstore_error_text_tells_tls_from_connection_failures(inner: str, kind: str, reason: str) -> None:
    from s3qbb.s3.obstore_errors import transport_error

    class GenericError(Exception):
        pass

    err = transport_error(GenericError(_obstore_text(inner)), "PutObject s3://bkt/k")
    assert (err.kind, err.reason, err.status) == (kind, reason, None)
    assert is_transient(err) is (kind == "connect")
