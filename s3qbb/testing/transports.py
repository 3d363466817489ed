"""Testing on either transport: an endpoint using a transport, and request counting on both.

`with_transport` returns a test endpoint whose configuration uses boto3 or
obstore (see the ``s3_transport`` fixture of `s3qbb.testing.fixtures`, which
runs a test once per transport). `count_requests` counts the requests an
`~s3qbb.s3.objects.S3Bucket` (or a datastore's) sends: on the boto3
transport by hooking botocore (`~s3qbb.testing.faults.RequestCounter`, one
count per HTTP request), on another transport by wrapping its transport
(`TransportCounter`, one count per transport request, each of which is one
HTTP request).
"""

from __future__ import annotations

__all__ = ["OPERATIONS", "TransportCounter", "count_requests", "obstore_available", "with_transport"]

import dataclasses
import functools
import importlib.util
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol, Self

from .counting import OperationCounts

if TYPE_CHECKING:
    from types import TracebackType

    from ..s3.objects import S3Bucket
    from .servers import S3TestEndpoint

OPERATIONS: dict[str, str] = {
    "get_object": "GetObject",
    "head_object": "HeadObject",
    "put_object": "PutObject",
    "list_objects": "ListObjectsV2",
    "delete_object": "DeleteObject",
    "delete_objects": "DeleteObjects",
    "create_multipart_upload": "CreateMultipartUpload",
    "upload_part": "UploadPart",
    "complete_multipart_upload": "CompleteMultipartUpload",
    "abort_multipart_upload": "AbortMultipartUpload",
    "list_multipart_uploads": "ListMultipartUploads",
}
"""S3 operation name of each `~s3qbb.s3.transport.Transport` method."""


def obstore_available() -> bool:
    """Tell whether obstore is installed (the obstore transport can run)."""
    return importlib.util.find_spec("obstore") is not None


def with_transport(endpoint: S3TestEndpoint, transport: str) -> S3TestEndpoint:
    """Return ``endpoint`` whose configuration uses ``transport`` (``"boto3"`` or ``"obstore"``).

    Parameters
    ----------
    endpoint : `s3qbb.testing.servers.S3TestEndpoint`
        A prepared test endpoint.
    transport : `str`
        The transport.

    Returns
    -------
    endpoint : `s3qbb.testing.servers.S3TestEndpoint`
        The same server, bucket and back-door client; ``config.transport`` set.
    """
    return dataclasses.replace(endpoint, config=endpoint.config.model_copy(update={"transport": transport}))


class _Counts(Protocol):
    @property
    def requests(self) -> Counter[str]: ...

    @property
    def total(self) -> int: ...

    def reset(self) -> None: ...

    def detach(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class TransportCounter(OperationCounts):
    """Count the requests of an `~s3qbb.s3.objects.S3Bucket`'s transport, per S3 operation.

    Wraps every request method of the bucket's transport (each call is one
    request, failed ones included) until `detach`. Use `count_requests` to get
    the counter that fits the transport.

    Parameters
    ----------
    bucket : `s3qbb.s3.objects.S3Bucket`
        The bucket to observe; the counter attaches at once.
    """

    def __init__(self, bucket: S3Bucket) -> None:
        super().__init__()
        self._transport: Any = bucket.transport
        for method, operation in OPERATIONS.items():
            original = getattr(self._transport, method)
            setattr(self._transport, method, self._counting(original, operation))
        self._attached = True

    def _counting(self, method: Any, operation: str) -> Any:
        @functools.wraps(method)
        def counted(*args: Any, **kwargs: Any) -> Any:
            self._add(operation)
            return method(*args, **kwargs)

        return counted

    def detach(self) -> None:
        """Stop counting (idempotent): the transport's own methods are back."""
        if self._attached:
            for method in OPERATIONS:
                vars(self._transport).pop(method, None)
            self._attached = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.detach()


def count_requests(target: Any) -> _Counts:
    """Return a counter of the requests of a bucket or datastore, whatever its transport.

    Parameters
    ----------
    target : `s3qbb.s3.objects.S3Bucket` or `s3qbb.datastores.s3.S3Datastore`
        What to observe (a datastore's ``bucket``).

    Returns
    -------
    counter : `~s3qbb.testing.faults.RequestCounter` or `TransportCounter`
        Attached; a context manager with ``requests``, ``total`` and ``reset()``.
    """
    bucket: S3Bucket = target if hasattr(target, "transport") else target.bucket
    if bucket.transport.name == "boto3":
        from .faults import RequestCounter

        return RequestCounter(bucket.client)
    return TransportCounter(bucket)
