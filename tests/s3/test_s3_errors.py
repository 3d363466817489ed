"""Classification of transient errors and translation of S3 errors into s3qbb errors."""

from __future__ import annotations

import http.client
import ssl

import botocore.exceptions as bex
import pytest
import urllib3.exceptions
from botocore.exceptions import ClientError

from s3qbb.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    ConfigError,
    CredentialsError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    PreconditionFailedError,
    S3qbbError,
    TLSError,
    TransientStorageError,
)
from s3qbb.s3.errors import (
    S3ServiceError,
    TruncatedBodyError,
    error_kind,
    is_transient,
    s3_uri,
    translate_client_error,
    translate_error,
)
from s3qbb.s3.transport import TransportError

ENDPOINT = "http://127.0.0.1:9999"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"


def client_error(
    code: str,
    status: int | None,
    *,
    message: str = "server message",
    operation: str = "PutObject",
    **extra: str,
) -> ClientError:
    response: dict = {"Error": {"Code": code, "Message": message, **extra}, "ResponseMetadata": {}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status, "RequestId": "REQ123"}
    return ClientError(response, operation)


TRANSIENT = [
    client_error("SlowDown", 503),
    client_error("InternalError", 500),
    client_error("", 502),
    client_error("503", 503),  # HEAD: no body, status as code
    client_error("504", 504),
    client_error("RequestTimeout", 400),
    client_error("Throttling", 400),
    client_error("ThrottlingException", 400),
    client_error("RequestLimitExceeded", 400),
    client_error("TooManyRequests", 429),
    client_error("429", 429),
    client_error("ServiceUnavailable", 503),
    bex.ConnectionClosedError(endpoint_url=ENDPOINT),
    bex.ReadTimeoutError(endpoint_url=ENDPOINT),
    bex.ResponseStreamingError(error="reset"),
    bex.EndpointConnectionError(endpoint_url=ENDPOINT),
    bex.ConnectTimeoutError(endpoint_url=ENDPOINT),
    bex.IncompleteReadError(actual_bytes=1, expected_bytes=2),
    urllib3.exceptions.ProtocolError("connection broken"),
    urllib3.exceptions.IncompleteRead(1, 2),
    http.client.IncompleteRead(b"x", 3),
    ConnectionResetError("reset by peer"),
    TruncatedBodyError("short body"),
    # a connection closed or reset during the TLS handshake: like any reset
    bex.SSLError(endpoint_url=ENDPOINT, error=urllib3.exceptions.SSLError(ssl.SSLEOFError(8, "EOF"))),
    bex.SSLError(
        endpoint_url=ENDPOINT, error=urllib3.exceptions.SSLError(ConnectionResetError(104, "reset"))
    ),
]

PERMANENT = [
    client_error("NoSuchKey", 404),
    client_error("404", 404),
    client_error("NoSuchBucket", 404),
    client_error("AccessDenied", 403),
    client_error("403", 403),
    client_error("SignatureDoesNotMatch", 403),
    client_error("InvalidAccessKeyId", 403),
    client_error("PreconditionFailed", 412),
    client_error("ConditionalRequestConflict", 409),
    client_error("InvalidArgument", 400),
    client_error("BadDigest", 400),
    bex.SSLError(endpoint_url=ENDPOINT, error="certificate verify failed"),
    bex.SSLError(
        endpoint_url=ENDPOINT,
        error=urllib3.exceptions.SSLError(ssl.SSLCertVerificationError(1, "certificate verify failed")),
    ),
    bex.SSLError(endpoint_url=ENDPOINT, error=urllib3.exceptions.SSLError(ssl.SSLError(1, "WRONG_VERSION"))),
    TransportError("x", kind="tls", reason="InvalidCertificate(UnknownIssuer)"),
    bex.NoCredentialsError(),
    bex.ParamValidationError(report="bad"),
    ValueError("bug"),
    TransientStorageError("already retried"),
    DatasetIntegrityError("checksum mismatch"),
    KeyboardInterrupt(),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: f"{type(e).__name__}-{error_kind(e)}")
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: f"{type(e).__name__}-{error_kind(e)}")
def test_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_truncated_body_error_categories() -> None:
    err = TruncatedBodyError("got 3 of 10 bytes")
    assert isinstance(err, S3qbbError)
    assert isinstance(err, OSError)


def test_error_kind() -> None:
    assert error_kind(client_error("SlowDown", 503)) == "SlowDown"
    assert error_kind(client_error("503", 503)) == "HTTP503"
    assert error_kind(bex.ConnectionClosedError(endpoint_url=ENDPOINT)) == "ConnectionClosedError"


def translate(
    err: ClientError, key: str | None = "run/a/b.json", endpoint: str | None = ENDPOINT
) -> S3qbbError:
    return translate_client_error(err, operation="PutObject", bucket="bkt", key=key, endpoint=endpoint)


def test_no_such_bucket() -> None:
    err = translate(client_error("NoSuchBucket", 404))
    assert type(err) is BucketNotFoundError
    assert isinstance(err, FileNotFoundError)
    message = str(err)
    assert "'bkt'" in message
    assert ENDPOINT in message
    assert "create the bucket or fix the datastore root" in message
    assert "PutObject" in message


@pytest.mark.parametrize(
    "err", [client_error("NoSuchKey", 404), client_error("404", 404, message="Not Found")]
)
def test_missing_key(err: ClientError) -> None:
    result = translate(err)
    assert type(result) is DatasetNotFoundError
    assert isinstance(result, FileNotFoundError) and isinstance(result, LookupError)
    assert "s3://bkt/run/a/b.json" in str(result)
    assert ENDPOINT in str(result)


def test_404_without_key_is_the_bucket() -> None:
    result = translate(client_error("404", 404), key=None)
    assert type(result) is BucketNotFoundError
    assert "s3://bkt/" in str(result)


@pytest.mark.parametrize("err", [client_error("AccessDenied", 403), client_error("403", 403)])
def test_access_denied(err: ClientError) -> None:
    result = translate_client_error(err, operation="GetObject", bucket="bkt", key="k.json", endpoint=ENDPOINT)
    assert type(result) is AccessDeniedError
    assert isinstance(result, PermissionError)
    assert "GetObject" in str(result)
    assert "s3://bkt/k.json" in str(result)


@pytest.mark.parametrize(
    "err",
    [client_error("403", 403), TransportError("HeadObject failed", status=403, kind="response")],
    ids=["boto3", "obstore"],
)
def test_bare_403_of_a_head_names_clock_skew_as_a_possible_cause(err: ClientError | TransportError) -> None:
    """S3 signals a skewed clock only in an error body; a HEAD's 403 has none, so both causes are named."""
    result = translate_client_error(
        err, operation="HeadObject", bucket="bkt", key="k.json", endpoint=ENDPOINT
    )
    assert type(result) is AccessDeniedError
    message = str(result)
    assert "HeadObject on s3://bkt/k.json" in message and ENDPOINT in message
    assert "grant it" in message  # rights, as before
    assert "clock of this host is off" in message and "synchronise it" in message


def test_access_denied_with_its_code_does_not_blame_the_clock() -> None:
    result = translate(client_error("AccessDenied", 403))
    assert type(result) is AccessDeniedError and "clock" not in str(result)


@pytest.mark.parametrize(
    "code", ["InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"]
)
def test_credentials_errors_never_show_secrets(code: str) -> None:
    err = client_error(
        code,
        403,
        message=f"The signature for {KEY_ID} with {SECRET} does not match",
        AWSAccessKeyId=KEY_ID,
        StringToSign=f"AWS4-HMAC-SHA256 {KEY_ID}",
        SignatureProvided=SECRET,
        CanonicalRequest=f"GET / {SECRET}",
    )
    result = translate(err)
    assert type(result) is CredentialsError
    assert isinstance(result, PermissionError)
    message = str(result)
    assert SECRET not in message
    assert KEY_ID not in message
    assert "AWS_ACCESS_KEY_ID" in message
    assert code in message
    assert all(SECRET not in str(arg) for arg in result.args)


@pytest.mark.parametrize(
    "err",
    [
        client_error("PreconditionFailed", 412),
        client_error("412", 412),
        client_error("ConditionalRequestConflict", 409),
    ],
)
def test_precondition_failed(err: ClientError) -> None:
    result = translate(err)
    assert type(result) is PreconditionFailedError
    assert "s3://bkt/run/a/b.json" in str(result)


def test_other_mappings() -> None:
    assert type(translate(client_error("BadDigest", 400))) is DatasetIntegrityError
    assert type(translate(client_error("AuthorizationHeaderMalformed", 400))) is ConfigError
    assert type(translate(client_error("InvalidBucketName", 400))) is ConfigError


def test_unknown_error_keeps_code_and_status() -> None:
    result = translate(client_error("InvalidArgument", 400, message="Part number must be an integer"))
    assert type(result) is S3ServiceError
    assert isinstance(result, S3qbbError) and isinstance(result, OSError)
    assert (result.code, result.status) == ("InvalidArgument", 400)
    message = str(result)
    for part in ("PutObject", "s3://bkt/run/a/b.json", ENDPOINT, "InvalidArgument", "HTTP 400", "REQ123"):
        assert part in message
    assert "Part number must be an integer" in message


def test_translation_uses_code_not_text() -> None:
    tricky = client_error("AccessDenied", 403, message="NoSuchBucket NoSuchKey SlowDown")
    assert type(translate(tricky)) is AccessDeniedError
    # Code wins over status.
    assert type(translate(client_error("NoSuchBucket", 403))) is BucketNotFoundError
    # Status decides when the code is unknown.
    assert type(translate(client_error("Weird", 412))) is PreconditionFailedError


def test_default_endpoint_named() -> None:
    assert "the default AWS endpoint" in str(translate(client_error("NoSuchKey", 404), endpoint=None))


def test_caller_chains_the_original() -> None:
    original = client_error("NoSuchKey", 404)
    with pytest.raises(DatasetNotFoundError) as info:
        try:
            raise original
        except ClientError as err:
            raise translate(err) from err
    assert info.value.__cause__ is original


def test_translate_error_dispatch() -> None:
    result = translate_error(bex.NoCredentialsError(), operation="GetObject", bucket="bkt", key="k")
    assert type(result) is CredentialsError
    assert "s3://bkt/k" in str(result)
    assert translate_error(ValueError("x"), operation="GetObject", bucket="bkt") is None
    assert type(
        translate_error(client_error("NoSuchKey", 404), operation="GetObject", bucket="b", key="k")
    ) is (DatasetNotFoundError)


def test_s3_uri() -> None:
    assert s3_uri("b") == "s3://b/"
    assert s3_uri("b", "x/y") == "s3://b/x/y"


SSL_REASONS = [
    (
        "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)",
        "the server did not answer in TLS",
    ),
    (
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1006)",
        "the server's certificate is not trusted here",
    ),
]


@pytest.mark.parametrize(("reason", "hint"), SSL_REASONS)
def test_botocore_ssl_error_is_a_tls_error(reason: str, hint: str) -> None:
    """botocore's SSLError used to escape as it was (not an S3qbbError): now one clear TLSError."""
    raw = bex.SSLError(
        endpoint_url="https://s3.example.org/bkt/run/a/b.json",
        error=urllib3.exceptions.SSLError(ssl.SSLError(1, f"{reason} aws_secret_access_key={SECRET}")),
    )
    err = translate_error(
        raw, operation="PutObject", bucket="bkt", key="run/a/b.json", endpoint="https://s3.example.org"
    )
    assert type(err) is TLSError
    assert isinstance(err, S3qbbError) and isinstance(err, ConnectionError)
    message = str(err)
    assert message.startswith("PutObject on s3://bkt/run/a/b.json failed at https://s3.example.org: ")
    assert "the TLS connection could not be made" in message
    assert reason in message and hint in message
    assert "retrying will not help" in message
    assert "scheme of the endpoint URL matches the server" in message
    assert "AWS_CA_BUNDLE" in message
    assert SECRET not in message


def test_obstore_tls_error_is_a_tls_error() -> None:
    raw = TransportError(
        "GetObject s3://bkt/k failed", kind="tls", reason="InvalidCertificate(UnknownIssuer)"
    )
    err = translate_error(raw, operation="GetObject", bucket="bkt", key="k", endpoint=None)
    assert type(err) is TLSError
    message = str(err)
    assert "GetObject on s3://bkt/k failed at the default AWS endpoint" in message
    assert "InvalidCertificate(UnknownIssuer)" in message
    assert "signed by an issuer not trusted here" in message
    assert "SSL_CERT_FILE" in message and "retrying will not help" in message
    assert error_kind(raw) == "TransportError(tls)"
