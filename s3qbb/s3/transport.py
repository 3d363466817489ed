"""The transport interface: single S3 requests on one bucket, in transport-neutral form.

`S3Bucket <s3qbb.s3.objects.S3Bucket>` decides *what* to send (create-only
writes, write tokens, placeholders, confirming HEADs, checksums) and wraps
every request in the one retry policy and the request counter; a `Transport`
only *sends* one request and reports its result. Two implementations exist:
`~s3qbb.s3.boto3_transport.Boto3Transport` (the default) and
`~s3qbb.s3.obstore_transport.ObstoreTransport` (``pip install 's3qbb[obstore]'``),
chosen per endpoint by `S3EndpointConfig.transport <s3qbb.config.S3EndpointConfig>`
through `make_transport`.

Each method makes exactly one request (one attempt: no retries of its own)
and raises the transport's raw error on failure: a botocore ``ClientError``
or connection error, or a `TransportError` that carries the S3 error code
and HTTP status. `s3qbb.s3.errors` classifies and translates both kinds.
This module imports neither boto3 nor obstore.
"""

from __future__ import annotations

__all__ = [
    "TRANSPORTS",
    "GetResult",
    "ListPage",
    "MultipartUpload",
    "Transport",
    "TransportError",
    "UploadsPage",
    "connection_key",
    "make_transport",
]

import datetime
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import S3qbbError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from ..config import S3EndpointConfig
    from .checksums import Algorithm, Checksum, Digest
    from .ownership import HeadResult

TRANSPORTS: tuple[str, ...] = ("boto3", "obstore")
"""Names accepted by `S3EndpointConfig.transport <s3qbb.config.S3EndpointConfig>`."""


@dataclass(frozen=True, slots=True)
class GetResult:
    """Body and metadata of a GET."""

    body: bytes
    size: int
    """Total size of the object (from ``Content-Range`` for ranged reads)."""
    server_checksum: Checksum | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    """User metadata of the object (keys without ``x-amz-meta-``), sent with every GET response."""
    digest: Digest | None = None
    """What ``digest()`` made for this request, fed every byte of `body` in order (see
    `Transport.get_object`); `None` if no digest was asked for."""


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    """An incomplete multipart upload (see `S3Bucket.list_multipart_uploads <s3qbb.s3.objects.S3Bucket>`)."""

    key: str
    upload_id: str
    initiated: datetime.datetime | None = None
    """When the upload was created, by the server's clock (`None` if the server did not say)."""


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a listing: ``(key, ETag)`` pairs, their sizes and where the next page starts."""

    entries: list[tuple[str, str]]
    next_token: str | None
    """Opaque continuation of the listing; `None` on the last page."""
    sizes: list[int]
    """Size in bytes of each object of `entries`, in the same order."""


@dataclass(frozen=True, slots=True)
class UploadsPage:
    """One page of a listing of incomplete multipart uploads."""

    uploads: list[MultipartUpload]
    truncated: bool
    """Whether the server said more uploads follow."""
    next_markers: tuple[str | None, str | None] = (None, None)
    """Key and upload ID markers the server sent for the next page (either may be `None`)."""


class TransportError(S3qbbError, OSError):
    """One request failed; what the server (or the network) said, in transport-neutral form.

    Raised by transports that do not raise botocore errors (obstore). Like a
    botocore ``ClientError``, it is raw: classified (`s3qbb.s3.errors.is_transient`)
    and translated (`s3qbb.s3.errors.translate_error`) by the error tables,
    keyed on `code` and `status`, before it leaves `~s3qbb.s3.objects.S3Bucket`.

    Parameters
    ----------
    message : `str`
        What failed (method, URL, status), without credentials.
    code : `str`, optional
        S3 error code of the response (``""`` if none: HEAD responses, network failures).
    status : `int`, optional
        HTTP status of the response; `None` if no response arrived.
    kind : `str`, optional
        ``"response"`` (the server answered with an error), ``"connect"`` (the
        service could not be reached), ``"request"`` (the request could not be
        sent, or the connection was reset), ``"timeout"``, ``"interrupted"``
        (the response was cut short), ``"credentials"`` (no usable credentials
        were found), ``"tls"`` (the TLS handshake failed: certificate not
        trusted, or no TLS server at the address; never retried) or ``"unknown"``.
    server_message : `str`, optional
        The ``<Message>`` of the server's error response.
    request_id : `str`, optional
        The server's request ID.
    reason : `str`, optional
        What the network layer said of a failure without a response (kind
        ``"tls"``: the TLS error, e.g. ``InvalidCertificate(UnknownIssuer)``;
        kind ``"interrupted"``: `s3qbb.s3.obstore_errors.BODY_CUT` when the
        head of a response arrived and its body did not).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int | None = None,
        kind: Literal[
            "response", "connect", "request", "timeout", "interrupted", "credentials", "tls", "unknown"
        ] = "response",
        server_message: str = "",
        request_id: str | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.kind = kind
        self.server_message = server_message
        self.request_id = request_id
        self.reason = reason


class Transport(Protocol):
    """Single requests on one bucket (see the module documentation).

    Keys are full object keys. Every method makes one request and raises the
    transport's raw error on failure, except where it says otherwise.
    """

    name: str
    """``"boto3"`` or ``"obstore"``."""
    bucket: str
    """The bucket."""
    endpoint: str | None
    """Endpoint URL (for messages); `None` for the default AWS endpoint."""

    def get_object(
        self, key: str, byte_range: tuple[int, int] | None, digest: Callable[[], Digest] | None = None
    ) -> GetResult:
        """GET an object or the bytes ``[start, stop)`` of it, body read included.

        The body must be complete (a short body raises a transient error);
        `GetResult.size` is the total size of the object. With ``digest``, the
        request makes one `~s3qbb.s3.checksums.Digest` and feeds it the body,
        chunk by chunk as it arrives where the transport streams it (so its
        checksum is ready when the last byte is), and returns it as
        `GetResult.digest`.
        """

    def head_object(self, key: str) -> HeadResult | None:
        """HEAD an object: its size, user metadata and ETag; `None` if it does not exist."""

    def put_object(
        self,
        key: str,
        body: bytes,
        *,
        metadata: Mapping[str, str],
        checksum: Checksum | None,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str | None:
        """PUT an object: create-only (``If-None-Match: *``), replace-if (``If-Match``) or overwrite.

        ``checksum`` is the body's checksum, sent to the server where the
        transport can (see docs/datastores.rst, "Transports"). Returns the
        new object's ETag if the response gave one.
        """

    def list_objects(self, prefix: str, *, token: str | None, start_after: str | None) -> ListPage:
        """List up to 1,000 keys under ``prefix`` (a LIST request), after ``start_after`` or ``token``."""

    def delete_object(self, key: str, *, if_match: str | None = None) -> None:
        """DELETE an object (no error if it does not exist), only if its ETag is ``if_match`` if given."""

    def delete_objects(self, keys: Sequence[str]) -> dict[str, str]:
        """Delete up to 1,000 objects in one request; return key to error code of the failures."""

    def create_multipart_upload(self, key: str, *, metadata: Mapping[str, str], algorithm: Algorithm) -> str:
        """Start a multipart upload whose parts carry ``algorithm`` checksums; return its upload ID."""

    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes, checksum: Checksum
    ) -> dict[str, Any]:
        """Upload one part; return its entry for `complete_multipart_upload`."""

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: Iterable[Mapping[str, Any]], *, if_match: str | None
    ) -> None:
        """Complete a multipart upload, only if the stored object's ETag is ``if_match`` if given."""

    def abort_multipart_upload(self, key: str, upload_id: str) -> bool:
        """Abort a multipart upload; `False` if it no longer exists."""

    def list_multipart_uploads(
        self, prefix: str, *, markers: tuple[str, str] | None, page_size: int
    ) -> UploadsPage:
        """List up to ``page_size`` incomplete multipart uploads under ``prefix``, after ``markers``."""


def connection_key(config: S3EndpointConfig) -> tuple[object, ...]:
    """Return the fields of ``config`` that shape a client (retry and transfer settings do not).

    Parameters
    ----------
    config : `s3qbb.config.S3EndpointConfig`
        Endpoint configuration.

    Returns
    -------
    key : `tuple`
        Hashable; equal for configurations that may share one client.
    """
    return (
        config.endpoint_url,
        config.region,
        config.profile,
        config.access_key_id,
        config.secret_access_key,
        config.session_token,
        config.addressing_style,
        config.connect_timeout,
        config.read_timeout,
        config.max_pool_connections,
    )


def make_transport(config: S3EndpointConfig, bucket: str, *, client: Any = None) -> Transport:
    """Return the transport of ``config`` (``config.transport``) on ``bucket``, sharing cached clients.

    Parameters
    ----------
    config : `s3qbb.config.S3EndpointConfig`
        Endpoint configuration; its ``transport`` field chooses the implementation.
    bucket : `str`
        Bucket name.
    client : `mypy_boto3_s3.S3Client`, optional
        A boto3 client to use (tests): the boto3 transport on it, whatever
        ``config.transport`` says.

    Returns
    -------
    transport : `Transport`
        The boto3 transport (which imports boto3), or the obstore one (which
        imports obstore, not boto3).

    Raises
    ------
    ConfigError
        If the obstore transport is asked for and obstore is not installed.
    """
    name = "boto3" if client is not None else getattr(config, "transport", "boto3")
    module = importlib.import_module(f".{name}_transport", __package__)
    transport: Transport = module.transport_for(config, bucket, client=client)
    return transport
