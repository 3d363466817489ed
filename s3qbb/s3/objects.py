"""Object operations on one bucket: every request counted, retried by one policy, errors translated.

`S3Bucket` is the only object that issues data requests. Each public method
makes the minimum number of requests for its job: `S3Bucket.put_new` of a small
object is one create-only PUT (plus a HEAD only when the PUT answers 412, or to
confirm the write on an endpoint whose conditional PUT is not known to be
atomic), `S3Bucket.get` is one GET whose body read is retried together with it.
Every write carries the writer's `~s3qbb.core.attempt.WriteToken` in metadata
(`WRITE_TOKEN`), and ownership of an existing object is decided by it alone.
"""

from __future__ import annotations

__all__ = [
    "WRITE_CHECKSUM",
    "WRITE_PENDING",
    "WRITE_TOKEN",
    "GetResult",
    "HeadResult",
    "MultipartUpload",
    "S3Bucket",
    "WriteConflictError",
]

import datetime
import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import botocore.exceptions

from ..core.attempt import WriteToken
from ..errors import AccessDeniedError, DatasetNotFoundError, PreconditionFailedError, S3qbbError
from . import checksums
from .errors import TruncatedBodyError, error_code, http_status, is_missing, s3_uri, translate_error
from .multipart import put_multipart
from .ownership import (
    WRITE_CHECKSUM,
    WRITE_PENDING,
    WRITE_TOKEN,
    HeadResult,
    WriteConflictError,
    conflict,
    object_metadata,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import DeleteTypeDef

    from ..config import S3EndpointConfig
    from ..retry import RetryPolicy

_LOG = logging.getLogger(__name__)
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class GetResult:
    """Body and metadata of a GET."""

    body: bytes
    size: int
    """Total size of the object (from ``Content-Range`` for ranged reads)."""
    server_checksum: checksums.Checksum | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    """User metadata of the object (keys without ``x-amz-meta-``), sent with every GET response."""


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    """An incomplete multipart upload (see `S3Bucket.list_multipart_uploads`)."""

    key: str
    upload_id: str
    initiated: datetime.datetime | None = None
    """When the upload was created, by the server's clock (`None` if the server did not say)."""


class S3Bucket:
    """Counted, retried, translated object operations on one bucket.

    Parameters
    ----------
    client : `mypy_boto3_s3.S3Client`
        boto3 client (shared between threads).
    bucket : `str`
        Bucket name.
    config : `s3qbb.config.S3EndpointConfig`
        Endpoint configuration (checksum, encryption, multipart settings).
    retry : `s3qbb.retry.RetryPolicy`
        The one retry policy.
    count : `~collections.abc.Callable` [[`str`], `None`]
        Called with the operation name before every request attempt.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        config: S3EndpointConfig,
        retry: RetryPolicy,
        count: Callable[[str], None],
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.config = config
        self.retry = retry
        self._count = count
        self.endpoint = client.meta.endpoint_url
        self._sse: dict[str, str] = {}
        if config.server_side_encryption:
            self._sse["ServerSideEncryption"] = config.server_side_encryption
            if config.sse_kms_key_id:
                self._sse["SSEKMSKeyId"] = config.sse_kms_key_id

    # ----------------------------------------------------------------- core

    def _request(self, operation: str, key: str | None, fn: Callable[[], _R]) -> _R:
        """Run one logical request (retried), translating permanent errors."""

        def attempt() -> _R:
            self._count(operation)
            return fn()

        try:
            return self.retry.call(attempt, description=f"{operation} {s3_uri(self.bucket, key)}")
        except S3qbbError:
            raise
        except Exception as err:
            translated = translate_error(
                err, operation=operation, bucket=self.bucket, key=key, endpoint=self.endpoint
            )
            if translated is None:
                raise
            raise translated from err

    def uri(self, key: str) -> str:
        """Return ``s3://bucket/key``."""
        return s3_uri(self.bucket, key)

    # ---------------------------------------------------------------- reads

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> GetResult:
        """Read an object (or the byte range ``[start, stop)``) with one GET, body read included.

        Raises
        ------
        DatasetNotFoundError
            If the key does not exist.
        TransientStorageError
            If transient failures outlast the retry policy.
        """
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if byte_range is not None:
            kwargs["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"

        def fetch() -> GetResult:
            response = self.client.get_object(**kwargs)
            body = response["Body"].read()
            expected = response.get("ContentLength")
            if expected is not None and len(body) != expected:
                raise TruncatedBodyError(
                    f"GET {self.uri(key)} returned {len(body)} of {expected} bytes; the read will be retried."
                )
            size = len(body)
            content_range = response.get("ContentRange")
            if content_range and "/" in content_range:
                total = content_range.rsplit("/", 1)[1]
                size = int(total) if total.isdigit() else size
            server = None
            for algorithm in checksums.ALGORITHMS:
                value = response.get(checksums.request_parameter(algorithm))
                if isinstance(value, str) and "-" not in value:
                    server = checksums.Checksum(algorithm, value)
                    break
            return GetResult(body, size, server, dict(response.get("Metadata", {})))

        return self._request("GetObject", key, fetch)

    def head(self, key: str) -> HeadResult | None:
        """Return an object's size and metadata, or `None` if it does not exist (one HEAD)."""

        def fetch() -> HeadResult | None:
            try:
                response = self.client.head_object(Bucket=self.bucket, Key=key)
            except botocore.exceptions.ClientError as err:
                if is_missing(err):
                    return None
                raise
            return HeadResult(
                int(response.get("ContentLength", -1)),
                object_metadata(response.get("Metadata")),
                response.get("ETag"),
            )

        return self._request("HeadObject", key, fetch)

    def list_keys(self, prefix: str, *, start_after: str | None = None) -> Iterator[list[str]]:
        """Yield pages of keys under a prefix (one ListObjectsV2 request per page of up to 1,000)."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1000}
            if token:
                kwargs["ContinuationToken"] = token
            elif start_after:
                kwargs["StartAfter"] = start_after
            response = self._request(
                "ListObjectsV2", prefix, functools.partial(self.client.list_objects_v2, **kwargs)
            )
            yield [item["Key"] for item in response.get("Contents", [])]
            if not response.get("IsTruncated"):
                return
            token = response.get("NextContinuationToken")

    def list_etags(self, prefix: str) -> Iterator[list[tuple[str, str]]]:
        """Yield pages of ``(key, ETag)`` under a prefix (one ListObjectsV2 request per 1,000 keys)."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1000}
            if token:
                kwargs["ContinuationToken"] = token
            response = self._request(
                "ListObjectsV2", prefix, functools.partial(self.client.list_objects_v2, **kwargs)
            )
            yield [(item["Key"], str(item.get("ETag", ""))) for item in response.get("Contents", [])]
            if not response.get("IsTruncated"):
                return
            token = response.get("NextContinuationToken")

    def list_multipart_uploads(
        self, prefix: str, *, page_size: int = 1000
    ) -> Iterator[list[MultipartUpload]]:
        """Yield pages of the incomplete multipart uploads under a prefix (one ListMultipartUploads each).

        Parameters
        ----------
        prefix : `str`
            Key prefix (``""`` for the whole bucket).
        page_size : `int`, optional
            Uploads asked for per request (at most 1,000 on AWS).

        Notes
        -----
        Later pages start after the key and upload ID markers of the previous
        one (the last upload's when the server sends none). Some servers
        misread those markers (SeaweedFS 4.48 skips uploads), and iteration
        stops if the markers repeat, so a caller that must see every upload
        lists again after acting on what it saw (as
        `s3qbb.datastores.cleanup.abort_stale_uploads` does).
        """
        markers: tuple[str, str] | None = None
        seen: set[tuple[str, str]] = set()
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxUploads": page_size}
            if markers is not None:
                kwargs["KeyMarker"], kwargs["UploadIdMarker"] = markers
            response = self._request(
                "ListMultipartUploads",
                prefix,
                functools.partial(self.client.list_multipart_uploads, **kwargs),
            )
            uploads = [
                MultipartUpload(item["Key"], item["UploadId"], item.get("Initiated"))
                for item in response.get("Uploads", [])
                if "Key" in item and "UploadId" in item
            ]
            yield uploads
            if not response.get("IsTruncated") or not uploads:
                return
            markers = (
                response.get("NextKeyMarker") or uploads[-1].key,
                response.get("NextUploadIdMarker") or uploads[-1].upload_id,
            )
            if markers in seen:
                return
            seen.add(markers)

    # --------------------------------------------------------------- writes

    def put_new(
        self,
        key: str,
        data: bytes,
        checksum: checksums.Checksum,
        *,
        token: WriteToken | None = None,
        metadata: Mapping[str, str] | None = None,
        replace_earlier: bool = True,
    ) -> None:
        """Create an object that must not exist yet, as the write of ``token``.

        A small object is one create-only PUT (``If-None-Match: *``), plus one
        HEAD to confirm it when the endpoint's conditional PUT is not known to
        be atomic (`S3EndpointConfig.conditional_put_atomic`). A large one is
        claimed first by a create-only PUT of a placeholder, then uploaded in
        parts and always confirmed by a HEAD (see `s3qbb.s3.multipart.put_multipart`).

        Ownership is decided by the write token in the object's metadata, never
        by content: an object carrying ``token`` is ours (a retried PUT whose
        first response was lost); an object carrying an earlier attempt of the
        same quantum is replaced (``If-Match`` on its ETag, with a warning);
        anything else is another writer's.

        Parameters
        ----------
        key : `str`
            Object key.
        data : `bytes`
            Content.
        checksum : `s3qbb.s3.checksums.Checksum`
            Checksum of ``data`` (sent to the server and kept in metadata).
        token : `s3qbb.core.attempt.WriteToken`, optional
            The writing attempt; a new one (of a random quantum) by default.
        metadata : `~collections.abc.Mapping` [`str`, `str`], optional
            More object metadata (s3qbb's own keys take precedence).
        replace_earlier : `bool`, optional
            Replace an object of an earlier attempt of ``token``'s quantum
            (`True` by default); if `False`, such an object is a conflict too.

        Raises
        ------
        PreconditionFailedError
            If the object exists and is not this quantum's (it is left untouched),
            or if another writer's object is stored when the write ends.
        """
        token = token if token is not None else WriteToken.new()
        meta = {**(metadata or {}), WRITE_TOKEN: str(token), WRITE_CHECKSUM: str(checksum)}
        if len(data) >= self.config.multipart_threshold:
            put_multipart(self, key, data, checksum, token, meta, replace_earlier=replace_earlier)
            return
        extra = {checksums.request_parameter(checksum.algorithm): checksum.value}
        self._create(key, data, meta, token, extra, replace_earlier=replace_earlier)

    def _head_readable(self, key: str) -> HeadResult | bool | None:
        """HEAD ``key``: its metadata, `None` if missing, `False` if this identity may not read it."""
        try:
            return self.head(key)
        except AccessDeniedError:  # a write-only identity cannot look
            return False

    def _create(
        self,
        key: str,
        body: bytes,
        metadata: dict[str, str],
        token: WriteToken,
        extra: Mapping[str, str],
        *,
        replace_earlier: bool,
    ) -> str | None:
        """One create-only PUT as the write of ``token``; return the stored object's ETag if known."""
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": body,
            "Metadata": metadata,
            **extra,
            **self._sse,
        }
        try:
            response = self._request(
                "PutObject", key, lambda: self.client.put_object(IfNoneMatch="*", **kwargs)
            )
        except PreconditionFailedError as err:
            head = self._head_readable(key)
            if isinstance(head, HeadResult) and head.token == token:
                return head.etag  # our own write, retried after its response was lost
            if (
                not replace_earlier
                or not isinstance(head, HeadResult)
                or not token.is_earlier_attempt(head.token)
            ):
                raise self._conflict(key, head, mine=token) from err
            return self._replace(key, kwargs, head, token)
        if not self.config.conditional_put_atomic:
            self._confirm(key, token)
        return response.get("ETag")

    def _replace(self, key: str, kwargs: dict[str, Any], head: HeadResult, token: WriteToken) -> str | None:
        """Replace an earlier attempt's object (``If-Match`` on the ETag seen) with this attempt's."""
        if not head.etag:
            raise self._conflict(key, head)
        earlier = head.token
        _LOG.warning(
            "Replacing %s%s, left by an earlier attempt (%s) of quantum %s, with the write of attempt %s.",
            self.uri(key),
            " (an unfinished upload's placeholder)" if head.pending else "",
            earlier.attempt_id if earlier is not None else "?",
            token.quantum_id,
            token.attempt_id,
        )
        etag = head.etag
        try:
            response = self._request("PutObject", key, lambda: self.client.put_object(IfMatch=etag, **kwargs))
        except (PreconditionFailedError, DatasetNotFoundError) as err:
            # Changed or deleted since the HEAD: ours only if a retry after a lost response says so.
            again = self._head_readable(key)
            if isinstance(again, HeadResult) and again.token == token:
                return again.etag
            raise self._conflict(key, again) from err
        if not self.config.conditional_put_atomic:
            self._confirm(key, token)
        return response.get("ETag")

    def _confirm(self, key: str, token: WriteToken, *, complete: bool = False) -> None:
        """Raise `PreconditionFailedError` unless the stored object carries ``token`` (one HEAD)."""
        head = self._head_readable(key)
        if head is False:
            _LOG.debug("Cannot confirm the write of %s: this identity may not read it.", self.uri(key))
            return
        if not isinstance(head, HeadResult) or head.token != token or (complete and head.pending):
            raise self._conflict(key, head, lost=True)

    def _conflict(
        self,
        key: str,
        head: HeadResult | bool | None,
        *,
        lost: bool = False,
        mine: WriteToken | None = None,
    ) -> WriteConflictError:
        return conflict(self.uri(key), head, lost=lost, mine=mine)

    def abort_upload(self, key: str, upload_id: str) -> bool:
        """Abort a multipart upload (one AbortMultipartUpload request).

        Returns
        -------
        aborted : `bool`
            `False` if the upload no longer exists (completed or aborted already).

        Raises
        ------
        AccessDeniedError
            If the credentials may not abort uploads under the key.
        """

        def abort() -> bool:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except botocore.exceptions.ClientError as err:
                if error_code(err) == "NoSuchUpload" or http_status(err) == 404:
                    return False
                raise
            return True

        return self._request("AbortMultipartUpload", key, abort)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload, logging (not raising) failures."""
        try:
            self.abort_upload(key, upload_id)
        except Exception as err:  # the original failure matters more
            _LOG.warning("Could not abort multipart upload %s of %s: %s", upload_id, self.uri(key), err)

    def put_raw(
        self,
        key: str,
        data: bytes,
        *,
        token: WriteToken | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Write an object unconditionally (for files s3qbb owns outright, not datasets).

        The object carries ``token`` (a new one of a random quantum by default)
        and its checksum in metadata, like every object s3qbb writes.
        """
        checksum = checksums.compute(self.config.checksum_algorithm, data)
        token = token if token is not None else WriteToken.new()
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "Metadata": {**(metadata or {}), WRITE_TOKEN: str(token), WRITE_CHECKSUM: str(checksum)},
            checksums.request_parameter(checksum.algorithm): checksum.value,
            **self._sse,
        }
        self._request("PutObject", key, lambda: self.client.put_object(**kwargs))

    # -------------------------------------------------------------- deletes

    def delete(self, key: str) -> None:
        """Delete one object (no error if it is already gone)."""
        self._request("DeleteObject", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=key))

    def delete_many(self, keys: Iterable[str]) -> dict[str, str]:
        """Delete objects in batches of 1,000 (one DeleteObjects request each).

        Returns
        -------
        failures : `dict` [`str`, `str`]
            Key to error code of every object that could not be deleted.
        """
        pending = list(dict.fromkeys(keys))
        failures: dict[str, str] = {}
        for start in range(0, len(pending), 1000):
            batch = pending[start : start + 1000]
            payload: DeleteTypeDef = {"Objects": [{"Key": k} for k in batch], "Quiet": True}
            delete = functools.partial(self.client.delete_objects, Bucket=self.bucket, Delete=payload)
            response = self._request("DeleteObjects", batch[0], delete)
            for error in response.get("Errors", []):
                failures[error.get("Key", "?")] = error.get("Code", "?")
        return failures
