"""Classify and translate errors of S3 requests.

`is_transient` decides what the retry layer retries. `translate_error` turns
the raw error of a request (a botocore `ClientError`, or the transport-neutral
`~s3qbb.s3.transport.TransportError` of the obstore transport) into an s3qbb
exception using tables keyed on the S3 error code and the HTTP status, never
on the error's text. A failed TLS handshake (botocore's ``SSLError``, a
`~s3qbb.s3.transport.TransportError` of kind ``"tls"``) is not retried and
becomes a `~s3qbb.errors.TLSError`. Messages name the operation, the
``s3://`` URI and the endpoint, and never contain credentials.

botocore is not imported here: its exception classes are only looked at once
botocore has been loaded (no botocore exception can exist before), so the
obstore transport classifies its errors without importing it. The same goes
for `http.client` (and the `ssl` it imports), which only boto3's stack uses.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import (
    AccessDeniedError,
    BucketNotFoundError,
    ConfigError,
    CredentialsError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    PreconditionFailedError,
    S3qbbError,
)
from .tls_errors import tls_cut_short, translate_tls_error
from .transport import TransportError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import ModuleType

    import botocore.exceptions

__all__ = [
    "TRANSIENT_ERROR_CODES",
    "TRANSIENT_HTTP_STATUSES",
    "S3ServiceError",
    "TruncatedBodyError",
    "error_code",
    "error_kind",
    "http_status",
    "is_missing",
    "is_transient",
    "s3_uri",
    "translate_client_error",
    "translate_error",
]


class TruncatedBodyError(S3qbbError, OSError):
    """A response body ended before the length announced by ``Content-Length``.

    Transient: the GET and the body read are retried together.
    """


class S3ServiceError(S3qbbError, OSError):
    """An S3 request failed for a reason without a more specific s3qbb error.

    Parameters
    ----------
    message : `str`
        Explanation.
    code : `str`
        S3 error code (``""`` if the response had none).
    status : `int` or `None`
        HTTP status of the response.
    """

    def __init__(self, message: str, *, code: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


TRANSIENT_HTTP_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses of responses worth retrying."""

TRANSIENT_ERROR_CODES: frozenset[str] = frozenset(
    {
        "BandwidthLimitExceeded",
        "InternalError",
        "PriorRequestNotComplete",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "SlowDown",
        "ThrottledException",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "TooManyRequestsException",
    }
)
"""S3 (and AWS-wide) error codes worth retrying whatever their HTTP status."""

_BASE_TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionResetError,
    ConnectionAbortedError,
    TruncatedBodyError,
)
_TRANSIENT_KINDS = frozenset({"connect", "request", "timeout", "interrupted"})
"""`TransportError.kind` values worth retrying: nothing or not all of the answer arrived."""


def _botocore() -> ModuleType | None:
    """Return ``botocore.exceptions`` if botocore is loaded (else no botocore error can exist)."""
    return sys.modules.get("botocore.exceptions")


def _is_client_error(err: BaseException) -> bool:
    botocore_exceptions = _botocore()
    return botocore_exceptions is not None and isinstance(err, botocore_exceptions.ClientError)


def _transient_exceptions() -> tuple[type[BaseException], ...]:
    """Errors raised while sending a request or reading its response (those of loaded libraries)."""
    found = _BASE_TRANSIENT
    # Looked up, not imported: importing http.client (and ssl, email.parser with it) costs a job on
    # the obstore transport ~5 ms of its start (measured with benchmarks.job_start), and no
    # IncompleteRead can exist before something else has imported it.
    http_client = sys.modules.get("http.client")
    if http_client is not None:
        found += (http_client.IncompleteRead,)
    botocore_exceptions = _botocore()
    if botocore_exceptions is not None:
        found += (
            botocore_exceptions.HTTPClientError,  # ConnectionClosedError, ReadTimeoutError, ...
            botocore_exceptions.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError, ...
            botocore_exceptions.IncompleteReadError,
        )
    urllib3_exceptions = sys.modules.get("urllib3.exceptions")
    if urllib3_exceptions is not None:
        found += (
            urllib3_exceptions.ProtocolError,
            urllib3_exceptions.IncompleteRead,
            urllib3_exceptions.ReadTimeoutError,
        )
    return found


def _is_ssl_error(exc: BaseException) -> bool:
    # botocore's SSLError is a ConnectionError too, but a bad certificate does not heal itself.
    botocore_exceptions = _botocore()
    return botocore_exceptions is not None and isinstance(exc, botocore_exceptions.SSLError)


def error_code(err: BaseException) -> str:
    """Return the S3 error code of a failed request (``""`` if absent).

    Parameters
    ----------
    err : `BaseException`
        The error: a botocore `ClientError`, a `~s3qbb.s3.transport.TransportError`
        or an `S3ServiceError`; anything else has no code.

    Returns
    -------
    code : `str`
        E.g. ``"NoSuchKey"``; boto3 gives the status as text for responses
        without a body (HEAD).
    """
    if isinstance(err, TransportError | S3ServiceError):
        return err.code
    if _is_client_error(err):
        client_error: botocore.exceptions.ClientError = err  # type: ignore[assignment]
        return str(client_error.response.get("Error", {}).get("Code", "") or "")
    return ""


def http_status(err: BaseException) -> int | None:
    """Return the HTTP status of a failed request, if known.

    Parameters
    ----------
    err : `BaseException`
        The error: a botocore `ClientError`, a `~s3qbb.s3.transport.TransportError`
        or an `S3ServiceError`; anything else has no status.

    Returns
    -------
    status : `int` or `None`
        The status code.
    """
    if isinstance(err, TransportError | S3ServiceError):
        return err.status
    if _is_client_error(err):
        client_error: botocore.exceptions.ClientError = err  # type: ignore[assignment]
        status = client_error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    return None


def is_missing(err: BaseException) -> bool:
    """Tell whether an error of a request says that the object does not exist (404, ``NoSuchKey``).

    Parameters
    ----------
    err : `BaseException`
        The error (a botocore `ClientError` or a `~s3qbb.s3.transport.TransportError`).
    """
    return (_is_client_error(err) or isinstance(err, TransportError)) and (
        error_code(err) in {"NoSuchKey", "404", "NotFound"} or http_status(err) == 404
    )


def is_transient(exc: BaseException) -> bool:
    """Tell whether an error of an S3 request is worth retrying.

    Parameters
    ----------
    exc : `BaseException`
        The error raised by a transport's request (a boto3 call, or a
        `~s3qbb.s3.transport.TransportError`) or while reading a response body.

    Returns
    -------
    transient : `bool`
        `True` for throttling (``SlowDown``, 429 ...), server errors (500, 502,
        503, 504), connection failures, read timeouts and truncated bodies;
        `False` for everything else, including a failed TLS handshake (an
        untrusted certificate does not heal; a connection closed during the
        handshake is transient) and every s3qbb error other than
        `TruncatedBodyError` (so retry layers never nest).
    """
    if isinstance(exc, TransportError):
        if exc.kind in _TRANSIENT_KINDS:
            return True
        return exc.code in TRANSIENT_ERROR_CODES or exc.status in TRANSIENT_HTTP_STATUSES
    if _is_client_error(exc):
        return error_code(exc) in TRANSIENT_ERROR_CODES or http_status(exc) in TRANSIENT_HTTP_STATUSES
    if _is_ssl_error(exc):
        return tls_cut_short(exc)
    if isinstance(exc, S3qbbError) and not isinstance(exc, TruncatedBodyError):
        return False
    return isinstance(exc, _transient_exceptions())


def error_kind(exc: BaseException) -> str:
    """Name an error for retry statistics: the S3 code of an error response, else the class name.

    Parameters
    ----------
    exc : `BaseException`
        The error.

    Returns
    -------
    kind : `str`
        E.g. ``"SlowDown"`` or ``"ConnectionClosedError"``; for a
        `~s3qbb.s3.transport.TransportError` without a response, its kind
        (``"timeout"`` ...).
    """
    if isinstance(exc, TransportError) and exc.status is None:
        return f"TransportError({exc.kind})"
    if _is_client_error(exc) or isinstance(exc, TransportError):
        code = error_code(exc)
        status = http_status(exc)
        if code and code != str(status):
            return code
        return f"HTTP{status}" if status is not None else "ClientError"
    return type(exc).__name__


def s3_uri(bucket: str, key: str | None = None) -> str:
    """Format ``s3://bucket/key`` (``s3://bucket/`` without a key).

    Parameters
    ----------
    bucket : `str`
        Bucket name.
    key : `str`, optional
        Object key or prefix.

    Returns
    -------
    uri : `str`
        The URI.
    """
    return f"s3://{bucket}/{key or ''}"


@dataclass(frozen=True)
class _Rule:
    """How to translate one kind of S3 failure."""

    error_class: type[S3qbbError]
    template: str
    """Message; may use {operation}, {uri}, {bucket}, {endpoint} and {detail}."""


_NOT_FOUND_BUCKET = _Rule(
    BucketNotFoundError,
    "{operation} on {uri} failed: bucket {bucket!r} does not exist at {endpoint}; "
    "create the bucket or fix the datastore root{detail}",
)
_NOT_FOUND_KEY = _Rule(DatasetNotFoundError, "{operation} failed: {uri} does not exist at {endpoint}{detail}")
_ACCESS_DENIED = _Rule(
    AccessDeniedError,
    "{operation} on {uri} was denied by {endpoint}; grant this action to the credentials in use "
    "or use credentials that have it{detail}",
)
_CLOCK_SKEW = _Rule(
    AccessDeniedError,
    "{operation} on {uri} was refused by {endpoint} because the request was signed at a time too far "
    "from the service's: the clock of this host is off (S3 allows 15 minutes); synchronise it "
    "(NTP: chronyd, systemd-timesyncd), then run the job again{detail}",
)
_DENIED_WITHOUT_CODE = _Rule(
    AccessDeniedError,
    "{operation} on {uri} was refused by {endpoint} with a bare 403 (a response without a body, as to "
    "every HEAD, names no cause). Either the credentials in use lack this action: grant it or use "
    "credentials that have it; or the clock of this host is off by more than S3's 15 minutes (a GET or "
    "PUT would say RequestTimeTooSkewed): check it (`date -u`) and synchronise it (NTP: chronyd, "
    "systemd-timesyncd), then run the job again{detail}",
)
_BAD_CREDENTIALS = _Rule(
    CredentialsError,
    "{operation} on {uri} failed at {endpoint}: the credentials were rejected; check "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or the AWS profile in use{detail}",
)
_PRECONDITION = _Rule(
    PreconditionFailedError,
    "{operation} on {uri} at {endpoint}: a precondition failed (the object exists, changed or is "
    "being written concurrently){detail}",
)
_INTEGRITY = _Rule(
    DatasetIntegrityError,
    "{operation} on {uri} at {endpoint}: the service rejected the checksum of the data sent; "
    "the bytes were corrupted in transit or the source changed while uploading{detail}",
)
_WRONG_REGION = _Rule(
    ConfigError,
    "{operation} on {uri} failed at {endpoint}: the bucket is not in the configured region; "
    "set the region of the S3 endpoint configuration (S3QBB_S3_REGION){detail}",
)
_BAD_BUCKET_NAME = _Rule(
    ConfigError, "{operation} on {uri} failed at {endpoint}: invalid bucket name {bucket!r}{detail}"
)
_UNSUPPORTED = _Rule(
    S3ServiceError,
    "{operation} on {uri} failed at {endpoint}: the service does not implement this request{detail}",
)
_GENERIC = _Rule(S3ServiceError, "{operation} on {uri} failed at {endpoint}{detail}")

_CODE_TABLE: Mapping[str, _Rule] = {
    "NoSuchBucket": _NOT_FOUND_BUCKET,
    "NoSuchKey": _NOT_FOUND_KEY,
    "NotFound": _NOT_FOUND_KEY,
    "AccessDenied": _ACCESS_DENIED,
    "AllAccessDisabled": _ACCESS_DENIED,
    "InvalidAccessKeyId": _BAD_CREDENTIALS,
    "SignatureDoesNotMatch": _BAD_CREDENTIALS,
    "ExpiredToken": _BAD_CREDENTIALS,
    "RequestTimeTooSkewed": _CLOCK_SKEW,
    "RequestExpired": _CLOCK_SKEW,
    "InvalidToken": _BAD_CREDENTIALS,
    "TokenRefreshRequired": _BAD_CREDENTIALS,
    "PreconditionFailed": _PRECONDITION,
    "ConditionalRequestConflict": _PRECONDITION,
    "BadDigest": _INTEGRITY,
    "InvalidDigest": _INTEGRITY,
    "XAmzContentSHA256Mismatch": _INTEGRITY,
    "AuthorizationHeaderMalformed": _WRONG_REGION,
    "PermanentRedirect": _WRONG_REGION,
    "IllegalLocationConstraintException": _WRONG_REGION,
    "InvalidBucketName": _BAD_BUCKET_NAME,
    "NotImplemented": _UNSUPPORTED,
}
"""Translation by S3 error code; consulted first."""

_STATUS_TABLE: Mapping[int, _Rule] = {
    301: _WRONG_REGION,
    403: _ACCESS_DENIED,
    404: _NOT_FOUND_KEY,
    412: _PRECONDITION,
    501: _UNSUPPORTED,
}
"""Translation by HTTP status when the code is unknown (HEAD responses have no code)."""

# Codes whose server message may echo request details (string to sign, key id): not shown.
_HIDE_SERVER_MESSAGE: frozenset[type[S3qbbError]] = frozenset({CredentialsError})

_CREDENTIAL_EXCEPTIONS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "NoAuthTokenError",
    "TokenRetrievalError",
)
"""botocore's exceptions for credentials it could not find or refresh."""


def _is_credentials_failure(exc: BaseException) -> bool:
    botocore_exceptions = _botocore()
    if botocore_exceptions is None:
        return False
    return isinstance(exc, tuple(getattr(botocore_exceptions, name) for name in _CREDENTIAL_EXCEPTIONS))


def _rule_for(code: str, status: int | None, key: str | None) -> _Rule:
    if status == 403 and code in ("", "403"):
        # No error code (boto3 gives the status as the code): a HEAD's 403, whose cause went with the
        # body S3 does not send. A clock off by more than 15 minutes gives the same bare 403.
        return _DENIED_WITHOUT_CODE
    rule = _CODE_TABLE.get(code)
    if rule is None and status is not None:
        rule = _STATUS_TABLE.get(status)
    if rule is None:
        return _GENERIC
    if rule is _NOT_FOUND_KEY and key is None:
        # A 404 without a key (HeadBucket, ListObjectsV2 ...) can only be the bucket.
        return _NOT_FOUND_BUCKET
    return rule


def translate_client_error(
    err: botocore.exceptions.ClientError | TransportError,
    *,
    operation: str,
    bucket: str,
    key: str | None = None,
    endpoint: str | None = None,
) -> S3qbbError:
    """Translate an error response (a botocore `ClientError` or a `TransportError`) into an s3qbb exception.

    The exception class is chosen from a table keyed on the S3 error code,
    then from one keyed on the HTTP status; the error's text is never parsed.

    Parameters
    ----------
    err : `botocore.exceptions.ClientError` or `~s3qbb.s3.transport.TransportError`
        The error raised by the transport.
    operation : `str`
        What was attempted, e.g. ``"PutObject"`` or ``"get dataset"``.
    bucket : `str`
        Bucket of the request.
    key : `str`, optional
        Object key (or prefix) of the request; `None` for bucket-level requests.
    endpoint : `str`, optional
        Endpoint URL the request went to; `None` means the default AWS endpoint.

    Returns
    -------
    error : `s3qbb.errors.S3qbbError`
        `~s3qbb.errors.BucketNotFoundError`, `~s3qbb.errors.DatasetNotFoundError`,
        `~s3qbb.errors.AccessDeniedError`, `~s3qbb.errors.CredentialsError`,
        `~s3qbb.errors.PreconditionFailedError`, `~s3qbb.errors.DatasetIntegrityError`,
        `~s3qbb.errors.ConfigError` or `S3ServiceError`. The caller raises it
        ``from err`` so the original stays as ``__cause__``.
    """
    if isinstance(err, TransportError):
        server_message, request_id = err.server_message, err.request_id
    else:
        server_message = str(err.response.get("Error", {}).get("Message", "") or "")
        request_id = err.response.get("ResponseMetadata", {}).get("RequestId")
    code = error_code(err)
    status = http_status(err)
    rule = _rule_for(code, status, key)
    details = [f"S3 error {code or '?'}", f"HTTP {status if status is not None else '?'}"]
    if server_message and rule.error_class not in _HIDE_SERVER_MESSAGE:
        details.append(f"server said: {server_message}")
    if request_id:
        details.append(f"request id {request_id}")
    message = rule.template.format(
        operation=operation,
        uri=s3_uri(bucket, key),
        bucket=bucket,
        endpoint=endpoint or "the default AWS endpoint",
        detail=f" ({'; '.join(details)})",
    )
    if rule.error_class is S3ServiceError:
        return S3ServiceError(message, code=code, status=status)
    return rule.error_class(message)


def translate_error(
    exc: BaseException,
    *,
    operation: str,
    bucket: str,
    key: str | None = None,
    endpoint: str | None = None,
) -> S3qbbError | None:
    """Translate any error of a transport's request that has a meaningful s3qbb equivalent.

    Parameters
    ----------
    exc : `BaseException`
        The error raised by the transport (boto3 or obstore).
    operation : `str`
        What was attempted.
    bucket : `str`
        Bucket of the request.
    key : `str`, optional
        Object key of the request.
    endpoint : `str`, optional
        Endpoint URL the request went to.

    Returns
    -------
    error : `s3qbb.errors.S3qbbError` or `None`
        The translation of a `ClientError` or of a permanent `TransportError`
        (see `translate_client_error`), a `~s3qbb.errors.CredentialsError`
        for missing credentials, or a `~s3qbb.errors.TLSError` for a failed
        TLS handshake (see `translate_tls_error`); `None` if
        ``exc`` should propagate as it is (s3qbb errors, transient errors
        handled by the retry layer, programming errors).
    """
    if isinstance(exc, TransportError) and exc.kind == "credentials":
        return CredentialsError(
            f"{operation} on {s3_uri(bucket, key)} failed: no usable credentials were found "
            f"({exc}); set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, "
            "or the credentials of the S3 endpoint configuration"
        )
    if isinstance(exc, TransportError) and exc.kind == "tls":
        return translate_tls_error(
            exc.reason, transport="obstore", operation=operation, bucket=bucket, key=key, endpoint=endpoint
        )
    if _is_ssl_error(exc):
        reason = str(getattr(exc, "kwargs", {}).get("error", "")) or str(exc)
        return translate_tls_error(
            reason, transport="boto3", operation=operation, bucket=bucket, key=key, endpoint=endpoint
        )
    if isinstance(exc, TransportError) and exc.kind == "unknown" and exc.status is None and not exc.code:
        # No answer to go by (an obstore failure of no known form, a panic): the transport's own words.
        said = str(exc).partition(" failed: ")[2] or str(exc)  # without its "OPERATION URI failed: "
        return S3ServiceError(
            f"{operation} on {s3_uri(bucket, key)} failed at {endpoint or 'the default AWS endpoint'}: {said}"
        )
    if _is_client_error(exc) or isinstance(exc, TransportError):
        return translate_client_error(
            exc,  # type: ignore[arg-type]
            operation=operation,
            bucket=bucket,
            key=key,
            endpoint=endpoint,
        )
    if _is_credentials_failure(exc):
        return CredentialsError(
            f"{operation} on {s3_uri(bucket, key)} failed: no usable credentials were found "
            f"({type(exc).__name__}); set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, "
            "or the credentials of the S3 endpoint configuration"
        )
    return None
