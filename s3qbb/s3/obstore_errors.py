"""Errors of the obstore transport in s3qbb's terms: the status and S3 error code read from obstore's text.

obstore 0.12 raises exceptions without the HTTP status or the S3 error code
as attributes. `transport_error` reads them from the structured part of the
error (object_store's ``Debug source``: ``status: 503``, ``HttpError { kind:
Timeout }``, and the ``<Code>`` of the S3 error body) and returns a
`~s3qbb.s3.transport.TransportError`, which the error tables of
`s3qbb.s3.errors` classify and translate by code and status like a botocore
``ClientError``. A failed TLS handshake (rustls' error inside the failed
connection: an untrusted certificate, a server that does not speak TLS) is
of kind ``"tls"``, told apart from a refused or timed-out connection, which
stay ``"connect"`` and ``"timeout"``. A panic of the Rust code (pyo3's
``PanicException``, a `BaseException`) is of kind ``"unknown"`` too, its
message saying which settings to check. This module imports neither obstore nor boto3.

An error response whose body was cut short (the status line and headers
arrived, the body did not) loses its status: object_store reads the body
before it builds the error. Such an error is of kind ``"interrupted"``
(transient) with `BODY_CUT` as its reason; for a conditional PUT,
`refused_conditional_put` tells a refusal (412) from a failure to retry by
the object's state, as botocore tells them by the status it did read; for a
GET, `cut_get_error` tells a missing object (404) the same way.
"""

from __future__ import annotations

__all__ = [
    "BODY_CUT",
    "cut_get_error",
    "is_panic",
    "panic_advice",
    "refused_conditional_put",
    "transport_error",
    "unsettled_conditional_put",
]

import functools
import re
from typing import TYPE_CHECKING, Any

from .transport import TransportError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .ownership import HeadResult

BODY_CUT = "the response body was cut short"
"""`~s3qbb.s3.transport.TransportError.reason` of a response whose head arrived and whose body did not."""

_CREDENTIAL_HOSTS = ("169.254.169.254", "169.254.170.2", "[fd00:ec2::254]", "sts.")
"""Hosts of credential services object_store may call (instance metadata, ECS, STS)."""

_DEBUG = "\n\nDebug source:\n"
_STATUS = re.compile(r"\binner: Status \{\s*status: (\d{3}),")
_STATUS_LINE = re.compile(r"status code: (\d{3}) ")
_HTTP_KIND = r"\bHttpError \{\s*kind: (\w+),"
_BODY_ERROR = r"\breqwest::Error \{\s*kind: Body,"
_URI = re.compile(r"\buri: Some\(\s*(\S+?),?\s*\)")
_XML = {name: re.compile(rf"<{name}>([^<]{{0,500}})</{name}>") for name in ("Code", "Message", "RequestId")}
_HTTP_KINDS: Mapping[str, Any] = {
    "Connect": "connect",
    "Request": "request",
    "Timeout": "timeout",
    "Interrupted": "interrupted",
    "Decode": "interrupted",
}
_TLS_ERRORS = (
    "AlertReceived",
    "BadMaxFragmentSize",
    "DecryptError",
    "HandshakeNotComplete",
    "InappropriateHandshakeMessage",
    "InappropriateMessage",
    "InconsistentKeys",
    "InvalidCertRevocationList",
    "InvalidCertificate",
    "InvalidEncryptedClientHello",
    "InvalidMessage",
    "NoApplicationProtocol",
    "NoCertificatesPresented",
    "PeerIncompatible",
    "PeerMisbehaved",
    "PeerSentOversizedRecord",
    "UnsupportedNameType",
)
"""Variants of ``rustls::Error`` that end a handshake: none heals by retrying."""
_TLS = rf"\bkind: InvalidData,\s*error: ((?:{'|'.join(_TLS_ERRORS)})\b)"
"""A rustls error as the TLS layer of a connection reports it (an `io::Error` of kind ``InvalidData``)."""
_STATUS_OF_CLASS = {
    "FileNotFoundError": 404,
    "NotFoundError": 404,
    "AlreadyExistsError": 412,
    "PreconditionError": 412,
    "NotModifiedError": 304,
    "PermissionDeniedError": 403,
    "UnauthenticatedError": 401,
}


@functools.cache
def _pattern(source: str) -> re.Pattern[str]:
    # Compiled on first use: a job's expected 404s (no earlier report) need only the status patterns.
    return re.compile(source)


def is_panic(err: BaseException) -> bool:
    """Whether ``err`` is a panic of obstore's Rust code (``pyo3_runtime.PanicException``)."""
    return type(err).__name__ == "PanicException" and type(err).__module__ == "pyo3_runtime"


def panic_advice(err: BaseException) -> str:
    """Say what a panic of obstore's Rust code was and what to do about it (one sentence or two)."""
    said = " ".join(str(err).split())[:200] or "no message"
    return (
        f"obstore panicked ({said}), most likely on a setting object_store cannot use: check "
        "endpoint_url (S3QBB_S3_ENDPOINT_URL) and region (S3QBB_S3_REGION), or use the boto3 transport "
        "(transport: boto3, S3QBB_S3_TRANSPORT=boto3)"
    )


def transport_error(err: BaseException, what: str) -> TransportError:
    """Return the `~s3qbb.s3.transport.TransportError` of an obstore exception.

    obstore 0.12 exposes neither the HTTP status nor the S3 error code as
    attributes. They are read from the error's ``Debug source`` (the
    structured form of object_store's error: ``inner: Status { status: 503``,
    ``HttpError { kind: Timeout``) and from the S3 error document it quotes
    (``<Code>SlowDown</Code>``), with the exception's class as a fallback
    (`FileNotFoundError` is 404, ``PreconditionError`` 412 ...). An error
    in neither form is of kind ``"unknown"``: permanent, never retried. A
    connection whose TLS handshake failed is of kind ``"tls"`` (permanent),
    with rustls' error as `~s3qbb.s3.transport.TransportError.reason`.

    Parameters
    ----------
    err : `BaseException`
        The exception obstore raised.
    what : `str`
        The request, e.g. ``"GetObject s3://bucket/key"``.

    Returns
    -------
    error : `~s3qbb.s3.transport.TransportError`
        Code, status and kind of the failure.
    """
    if is_panic(err):
        return TransportError(f"{what} failed: {panic_advice(err)}", kind="unknown")
    text = str(err)
    summary, _, debug = text.partition(_DEBUG)
    match = _STATUS.search(debug) or _STATUS_LINE.search(summary)
    status = int(match.group(1)) if match else None
    fields = {
        name: (m.group(1).strip() if (m := pattern.search(text)) else "") for name, pattern in _XML.items()
    }
    uri = _URI.search(debug)
    kind: Any
    reason = ""
    if uri is not None and any(host in uri.group(1) for host in _CREDENTIAL_HOSTS):
        kind, status = "credentials", None  # the credential service failed, not the S3 request
    elif status is None and (tls := _pattern(_TLS).search(debug)) is not None:
        kind, reason = "tls", _debug_value(debug, tls.start(1))
    elif status is not None:
        kind = "response"
    elif (http := _pattern(_HTTP_KIND).search(debug)) is not None:
        kind = _HTTP_KINDS.get(http.group(1), "unknown")
        if kind == "interrupted" and _pattern(_BODY_ERROR).search(debug):
            reason = BODY_CUT
    else:
        status = _STATUS_OF_CLASS.get(type(err).__name__)
        kind = "response" if status is not None else "unknown"
    first = summary.strip().splitlines()[0] if summary.strip() else type(err).__name__
    if kind == "tls":
        first = f"TLS handshake failed: {reason} ({first})"
    return TransportError(
        f"{what} failed: {first[:300]}",
        code=fields["Code"],
        status=status,
        kind=kind,
        server_message=fields["Message"],
        request_id=fields["RequestId"] or None,
        reason=reason,
    )


def refused_conditional_put(
    failure: TransportError, head: HeadResult | None, what: str, *, if_match: str | None
) -> TransportError:
    """Return the error of a conditional PUT whose error response lost its body (`BODY_CUT`).

    A PUT that succeeds answers with no body, so a response whose body was
    cut was an error, of a status object_store could not read. The object
    tells whether it was the refusal: a create-only PUT (``If-None-Match``)
    is refused if an object exists, an ``If-Match`` PUT if the object is gone
    or has another ETag. Then the error is 412 ``PreconditionFailed``, as
    botocore reports the same response (it reads the status before the
    body), and the caller learns whose object it is from its write token;
    otherwise ``failure`` (transient) is returned, and the PUT is retried.

    Parameters
    ----------
    failure : `~s3qbb.s3.transport.TransportError`
        The error of the PUT (reason `BODY_CUT`).
    head : `~s3qbb.s3.ownership.HeadResult` or `None`
        The object as a HEAD after the PUT found it (`None`: missing).
    what : `str`
        The request, e.g. ``"PutObject s3://bucket/key"``.
    if_match : `str` or `None`
        The ETag of an ``If-Match`` PUT; `None` for a create-only PUT.

    Returns
    -------
    error : `~s3qbb.s3.transport.TransportError`
        The 412 of a refused PUT, or ``failure``.
    """
    if if_match is None:
        if head is None:
            return failure
        state = "an object exists at the key, so the create-only PUT was refused"
    else:
        if head is not None and head.etag == if_match:
            return failure
        state = "the object it was to replace is gone or changed, so the If-Match PUT was refused"
    return TransportError(
        f"{what} failed: its error response was cut short (its status lost) and {state} "
        "(taken as 412 Precondition Failed)",
        code="PreconditionFailed",
        status=412,
        kind="response",
    )


def unsettled_conditional_put(
    failure: TransportError, head_error: TransportError, what: str
) -> TransportError:
    """Return the error of a conditional PUT of lost status (`BODY_CUT`) whose object could not be looked at.

    Whether the PUT was refused (412) or failed (a 5xx) is unknown, so it
    stays a transient failure, retried; the message says why, and what
    would let s3qbb tell (a HEAD it may send, a network path that does not
    cut responses).

    Parameters
    ----------
    failure : `~s3qbb.s3.transport.TransportError`
        The error of the PUT (reason `BODY_CUT`).
    head_error : `~s3qbb.s3.transport.TransportError`
        Why the HEAD of the object failed.
    what : `str`
        The request, e.g. ``"PutObject s3://bucket/key"``.

    Returns
    -------
    error : `~s3qbb.s3.transport.TransportError`
        Of ``failure``'s kind and reason, its message saying both.
    """
    seen = f"HTTP {head_error.status}" if head_error.status is not None else head_error.kind
    return TransportError(
        f"{what} failed: its error response was cut short (its status lost: a refusal, 412, or a "
        f"failure), and a HEAD to see whether the object exists failed too ({seen}); retried as a "
        "failure. If it persists, check the network path to the S3 service (a proxy or load "
        "balancer cutting responses), and let this identity read the objects it writes "
        "(s3:GetObject) so that s3qbb can tell a refusal from a failure; or use the boto3 "
        "transport, which reads the status of such a response",
        status=failure.status,
        kind=failure.kind,
        reason=failure.reason,
    )


def _debug_value(debug: str, start: int) -> str:
    """Return the Rust ``Debug`` value at ``start`` on one line (``InvalidCertificate(UnknownIssuer)``)."""
    depth = 0
    end = len(debug)
    for index in range(start, len(debug)):
        char = debug[index]
        if char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
            if depth <= 0:
                end = index + 1 if depth == 0 else index
                break
        elif char == "," and depth == 0:
            end = index
            break
    value = re.sub(r"\s+", "", debug[start:end])
    return re.sub(r",(?=[)}\]])", "", value)[:200]


def cut_get_error(failure: TransportError, head: Callable[[], HeadResult | None]) -> TransportError:
    """Return the error of a GET whose error response lost its body (`BODY_CUT`), settled by a HEAD.

    A HEAD (no body to cut) that finds no object makes it the 404 botocore
    would have read: not found, not retried. An object there, or a HEAD that
    fails, leaves ``failure``, a transient failure retried as before.

    Parameters
    ----------
    failure : `~s3qbb.s3.transport.TransportError`
        The error of the GET (reason `BODY_CUT`, raised before any body was streamed).
    head : `~collections.abc.Callable`
        Sends the HEAD of the object: its metadata, `None` if it does not exist.

    Returns
    -------
    error : `~s3qbb.s3.transport.TransportError`
        A 404 ``NoSuchKey``, or ``failure``.
    """
    try:
        found = head()
    except TransportError:
        return failure
    if found is not None:
        return failure
    what = str(failure).partition(" failed: ")[0]
    return TransportError(
        f"{what} failed: its error response was cut short (its status lost) and a HEAD finds no object "
        "there (taken as 404 Not Found)",
        code="NoSuchKey",
        status=404,
        kind="response",
    )
