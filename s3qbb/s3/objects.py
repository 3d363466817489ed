"""Object operations on one bucket: every request counted, retried by one policy, errors translated.

`S3Bucket` is the only object that issues data requests. Each public method
makes the minimum number of requests for its job: `S3Bucket.put_new` is one
create-only PUT (plus a HEAD only when the PUT answers 412), `S3Bucket.get`
is one GET whose body read is retried together with it.
"""

from __future__ import annotations

__all__ = ["WRITE_TOKEN", "GetResult", "HeadResult", "MultipartUpload", "S3Bucket"]

import datetime
import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import botocore.exceptions

from ..errors import AccessDeniedError, DatasetNotFoundError, PreconditionFailedError, S3qbbError
from . import checksums
from .errors import TruncatedBodyError, error_code, http_status, s3_uri, translate_error

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import DeleteTypeDef

    from ..config import S3EndpointConfig
    from ..retry import RetryPolicy

_LOG = logging.getLogger(__name__)
_R = TypeVar("_R")

WRITE_TOKEN = "s3qbb-write-token"
"""Object metadata key holding the random token of the write that created it."""

WRITE_CHECKSUM = "s3qbb-checksum"
"""Object metadata key holding the full-object checksum of what the write sent ("CRC32C:...")."""

_CONFLICT_STATUSES = {409, 412}
_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}


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
class HeadResult:
    """Metadata of a HEAD."""

    size: int
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    """An incomplete multipart upload (see `S3Bucket.list_multipart_uploads`)."""

    key: str
    upload_id: str
    initiated: datetime.datetime | None = None
    """When the upload was created, by the server's clock (`None` if the server did not say)."""


def _is_conflict(err: BaseException) -> bool:
    return isinstance(err, botocore.exceptions.ClientError) and (
        error_code(err) in _CONFLICT_CODES or http_status(err) in _CONFLICT_STATUSES
    )


def _is_missing(err: BaseException) -> bool:
    return isinstance(err, botocore.exceptions.ClientError) and (
        error_code(err) in {"NoSuchKey", "404", "NotFound"} or http_status(err) == 404
    )


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
                if _is_missing(err):
                    return None
                raise
            return HeadResult(int(response.get("ContentLength", -1)), dict(response.get("Metadata", {})))

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
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Create an object that must not exist yet: one create-only PUT.

        A PUT that is retried after a lost response and then answers 412 is
        recognised as our own write by the write token in its metadata; an
        object holding exactly the bytes being written (same size and checksum,
        e.g. from an earlier call whose success was never reported) is accepted
        too: what is stored is then what the caller wants stored.

        Parameters
        ----------
        key : `str`
            Object key.
        data : `bytes`
            The bytes.
        checksum : `s3qbb.s3.checksums.Checksum`
            Their checksum, sent with the request and kept in the object metadata.
        metadata : `~collections.abc.Mapping` [`str`, `str`], optional
            More object metadata (e.g. the block checksums of a dataset).

        Raises
        ------
        PreconditionFailedError
            If another write created the object first (it is left untouched).
        """
        if len(data) >= self.config.multipart_threshold:
            self._put_multipart(key, data, checksum, metadata)
            return
        token = uuid.uuid4().hex
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "IfNoneMatch": "*",
            "Metadata": {**(metadata or {}), WRITE_TOKEN: token, WRITE_CHECKSUM: str(checksum)},
            checksums.request_parameter(checksum.algorithm): checksum.value,
            **self._sse,
        }
        try:
            self._request("PutObject", key, lambda: self.client.put_object(**kwargs))
        except PreconditionFailedError as err:
            if self._written_by(key, token, checksum, len(data)):
                return
            raise self._conflict(key) from err

    def _written_by(self, key: str, token: str, checksum: checksums.Checksum, size: int) -> bool:
        """Tell whether the object at ``key`` is this write's (token) or holds exactly its bytes."""
        try:
            head = self.head(key)
        except AccessDeniedError:  # a write-only identity cannot tell: treat it as someone else's
            return False
        if head is None:
            return False
        if head.metadata.get(WRITE_TOKEN) == token:
            return True
        return head.size == size and head.metadata.get(WRITE_CHECKSUM) == str(checksum)

    def _conflict(self, key: str) -> PreconditionFailedError:
        return PreconditionFailedError(
            f"{self.uri(key)} already exists (written by another writer); it was left untouched."
        )

    def _put_multipart(
        self, key: str, data: bytes, checksum: checksums.Checksum, metadata: Mapping[str, str] | None = None
    ) -> None:
        token = uuid.uuid4().hex
        # One HEAD first: no point uploading every part of an object that already exists. An
        # identity allowed to write but not to read its prefix gets 403 here; the create-only
        # complete still protects the object, so go on without the pre-check.
        try:
            exists = self.head(key) is not None
        except AccessDeniedError:
            exists = False
        if exists:
            if self._written_by(key, token, checksum, len(data)):
                return
            raise self._conflict(key)
        algorithm = checksum.algorithm
        created = self._request(
            "CreateMultipartUpload",
            key,
            lambda: self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ChecksumAlgorithm=algorithm,
                Metadata={**(metadata or {}), WRITE_TOKEN: token, WRITE_CHECKSUM: str(checksum)},
                **self._sse,  # type: ignore[arg-type]
            ),
        )
        upload_id = created["UploadId"]
        size = int(self.config.multipart_chunksize)
        view = memoryview(data)
        chunks = [(i + 1, view[off : off + size]) for i, off in enumerate(range(0, len(data), size))]

        def upload(part: tuple[int, memoryview]) -> dict[str, Any]:
            number, chunk = part
            part_sum = checksums.compute(algorithm, chunk)
            param = checksums.request_parameter(algorithm)
            response = self._request(
                "UploadPart",
                key,
                lambda: self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=bytes(chunk),
                    **{param: part_sum.value},  # type: ignore[arg-type]
                ),
            )
            return {"PartNumber": number, "ETag": response["ETag"], param: part_sum.value}

        try:
            with ThreadPoolExecutor(max_workers=min(self.config.max_concurrency, len(chunks))) as pool:
                parts = list(pool.map(upload, chunks))
            self._request(
                "CompleteMultipartUpload",
                key,
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                    IfNoneMatch="*",
                ),
            )
        except PreconditionFailedError as err:
            self.abort_multipart(key, upload_id)
            if self._written_by(key, token, checksum, len(data)):
                return
            raise self._conflict(key) from err
        except DatasetNotFoundError:
            # A retried CompleteMultipartUpload whose first attempt was applied (response lost)
            # may answer 404 NoSuchUpload: the object is then ours.
            if self._written_by(key, token, checksum, len(data)):
                return
            self.abort_multipart(key, upload_id)
            raise
        except BaseException:
            self.abort_multipart(key, upload_id)
            raise

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

    def put_raw(self, key: str, data: bytes) -> None:
        """Write an object unconditionally (for files s3qbb owns outright, not datasets)."""
        checksum = checksums.compute(self.config.checksum_algorithm, data)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
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
