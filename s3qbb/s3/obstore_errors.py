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
"""

from __future__ import annotations

__all__ = ["is_panic", "panic_advice", "transport_error"]

import re
from typing import TYPE_CHECKING, Any

from .transport import TransportError

if TYPE_CHECKING:
    from collections.abc import Mapping

_CREDENTIAL_HOSTS = ("169.254.169.254", "169.254.170.2", "[fd00:ec2::254]", "sts.")
"""Hosts of credential services object_store may call (instance metadata, ECS, STS)."""

_DEBUG = "\n\nDebug source:\n"
_STATUS = re.compile(r"\binner: Status \{\s*status: (\d{3}),")
_STATUS_LINE = re.compile(r"status code: (\d{3}) ")
_HTTP_KIND = re.compile(r"\bHttpError \{\s*kind: (\w+),")
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
_TLS = re.compile(rf"\bkind: InvalidData,\s*error: ((?:{'|'.join(_TLS_ERRORS)})\b)")
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
    elif status is None and (tls := _TLS.search(debug)) is not None:
        kind, reason = "tls", _debug_value(debug, tls.start(1))
    elif status is not None:
        kind = "response"
    elif (http := _HTTP_KIND.search(debug)) is not None:
        kind = _HTTP_KINDS.get(http.group(1), "unknown")
    else:
        status = _STATUS_OF_CLASS.get(type(err).__name__)
        kind = "response" if status is not None else "unknown"
    first = summary.strip().splitlines()[0] if summary.strip() else type(err).__name__
    if reason:
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
